package compact

import (
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/schemas"
)

// Every decoded event is judged by the schema's admission rule with the
// wall clock: future and expired ones are dead letters with their reason
// and never move the partition's latest event time (so never a
// watermark); a stale clock reading never refuses an event the clock
// admits.
func TestPartBufferAdmission(t *testing.T) {
	now := time.Date(2026, 11, 30, 17, 20, 0, 0, time.UTC)
	s := testSchema(t)
	s.Retention = 30 * 24 * time.Hour
	s.MaxFuture = 15 * time.Minute
	tests := []struct {
		name    string
		at      time.Time
		reading time.Time // the partition's clock reading before the event; zero: none yet
		reason  string    // "" = admitted
	}{
		{"now", now, now, ""},
		{"an hour old", now.Add(-time.Hour), now, ""},
		{"exactly max_future ahead", now.Add(15 * time.Minute), now, ""},
		{"past max_future", now.Add(15*time.Minute + time.Second), now, raw.ReasonFuture},
		{"9999-12-31T23:00", time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC), now, raw.ReasonFuture},
		{"in the last hour retention keeps", now.Add(-30 * 24 * time.Hour).Truncate(time.Hour), now, ""},
		{"in a sealed hour", now.Add(-30*24*time.Hour - time.Hour), now, raw.ReasonExpired},
		{"40 days old", now.Add(-40 * 24 * time.Hour), now, raw.ReasonExpired},
		{"a stale reading is read again", now.Add(10 * time.Minute), now.Add(-time.Hour), ""},
		{"no reading yet", now, time.Time{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPartBuffer(s, s.RawLayout(), rawSchema(s.RawLayout()), "orders", 0,
				limits{maxFileRows: 100, maxFileBytes: 1 << 20, maxFileAge: time.Minute}, -1, time.Time{})
			p.wall.read = func() time.Time { return now }
			if !tc.reading.IsZero() {
				p.wall.us = tc.reading.UnixMicro()
			}
			before := now.Add(-2 * time.Hour)
			p.add(record{Offset: 1, Value: event("a", before, 1), Time: now}, now)
			dead := p.add(record{Offset: 2, Value: event("b", tc.at, 2), Time: now}, now)
			b := p.cut(now, false)
			if dead != (tc.reason != "") {
				t.Fatalf("dead = %v, want reason %q", dead, tc.reason)
			}
			if tc.reason == "" {
				if len(b.dead) != 0 {
					t.Fatalf("admitted event dead-lettered: %+v", b.dead[0].recs)
				}
				want := before
				if tc.at.After(want) {
					want = tc.at
				}
				if !b.maxEvent.Equal(want) {
					t.Errorf("latest event %v, want %v", b.maxEvent, want)
				}
				return
			}
			if len(b.dead) != 1 || len(b.dead[0].recs) != 1 {
				t.Fatalf("dead letters %+v, want one", b.dead)
			}
			d := b.dead[0].recs[0]
			if d.Reason != tc.reason || d.Offset != 2 || !strings.Contains(d.Error, tc.at.Format(time.RFC3339)) {
				t.Errorf("dead letter reason %q offset %d error %q; want %q naming the event time", d.Reason, d.Offset, d.Error, tc.reason)
			}
			if !b.dead[0].hour.Equal(now.Truncate(time.Hour)) {
				t.Errorf("filed under hour %v, want the ingest hour %v", b.dead[0].hour, now.Truncate(time.Hour))
			}
			// The refused event moves nothing: the latest event is the
			// admitted one, and no hour file was opened for it.
			if !b.maxEvent.Equal(before) {
				t.Errorf("latest event %v after a refused one, want %v", b.maxEvent, before)
			}
			if len(b.files) != 1 || !b.files[0].hour.Equal(before.Truncate(time.Hour)) {
				t.Errorf("%d hour files, want only the admitted event's", len(b.files))
			}
		})
	}
}

// A checkpoint's latest event time from before admission (9999-12-31) is
// dropped, so the watermark does not start from it.
func TestSaneMaxEvent(t *testing.T) {
	now := time.Date(2026, 11, 30, 17, 20, 0, 0, time.UTC)
	s := testSchema(t)
	for _, tc := range []struct {
		in, want time.Time
	}{
		{now.Add(-time.Hour), now.Add(-time.Hour)},
		{now.Add(10 * time.Minute), now.Add(10 * time.Minute)},
		{time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC), time.Time{}},
		{time.Time{}, time.Time{}},
	} {
		if got := saneMaxEvent(tc.in, now, s); !got.Equal(tc.want) {
			t.Errorf("saneMaxEvent(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := saneMaxEvent(now.Add(time.Hour), now, &schemas.Schema{MaxFuture: 2 * time.Hour}); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("a schema's own max_future is not used: %v", got)
	}
}

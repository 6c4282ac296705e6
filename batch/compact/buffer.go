package compact

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// record is one Kafka record as the partition buffer sees it.
type record struct {
	Offset int64
	Value  []byte
	Time   time.Time // Kafka timestamp: when the record was ingested
}

// rowOverhead approximates what a buffered row costs beyond its JSON bytes
// (schemas.RawBuffer keeps 8 bytes per cell, string cells' bytes aside,
// plus the offset and the Kafka time). The JSON length already over-counts
// the column data, since it carries the field names, so
// len(value)+rowOverhead bounds real use well.
const rowOverhead = 64

// fastZstd is the codec of the files the compactor writes. zstd's fastest
// level costs half the CPU of its default for files a little larger, and
// compaction is CPU-bound; merge rewrites closed hours anyway.
var fastZstd = &zstd.Codec{Level: zstd.SpeedFastest}

// rawSchema is the raw layout's Parquet schema as the compactor writes it:
// every column compressed by fastZstd, integers and timestamps
// delta-encoded, strings delta-encoded (prefixes shared with the value
// before). Sorted event times, offsets and Kafka timestamps then shrink to
// a few bits per row and ids to their differing suffix, so zstd gets a
// fraction of the bytes: on the example orders (BenchmarkEncodeHour) this
// cut encoding CPU by about a quarter and the file by a tenth against
// plain encoding. Dictionary encoding for strings gave the same size at
// over 1.5 times the CPU. Column order (by name) and types are the
// layout's.
func rawSchema(l *schemas.RawLayout) *parquet.Schema {
	g := parquet.Group{}
	for _, f := range l.Schema.Fields() {
		n := parquet.Node(f)
		switch f.Type().Kind() {
		case parquet.Int64, parquet.Int32:
			n = parquet.Encoded(n, &parquet.DeltaBinaryPacked)
		case parquet.ByteArray:
			n = parquet.Encoded(n, &parquet.DeltaByteArray)
		}
		g[f.Name()] = parquet.Compressed(n, fastZstd)
	}
	return parquet.NewSchema(l.Schema.Name(), g)
}

// hourMicrosLen is an hour in µs.
const hourMicrosLen = int64(time.Hour / time.Microsecond)

// limits say when a partition's buffer must be cut into files.
type limits struct {
	maxFileRows  int
	maxFileBytes int64
	maxFileAge   time.Duration
}

// hourFile collects the rows of one partition for one event hour, until the
// next flush. first and last are the offsets of its own records: its file
// holds every record of this hour in [first, last] of the flush's range,
// which is what lets readers drop an overlap by offset alone.
type hourFile struct {
	hour      time.Time
	ps        *parquet.Schema // rawSchema(layout)
	sorting   parquet.WriterOption
	timeField int // schema index of the event time field
	cols      *schemas.RawBuffer
	// buf holds the rows instead of cols when Merge (merge.go) builds
	// the file from parquet.Rows read back from the lake.
	buf         *parquet.Buffer
	first, last int64
	rows        int
	bytes       int64
}

// deadFile collects the undecodable records of one ingest hour.
type deadFile struct {
	hour        time.Time
	recs        []raw.DeadLetter
	first, last int64
}

// partBuffer buffers one Kafka partition's records between flushes: rows by
// event hour, dead letters by ingest hour. It does no I/O; cut hands its
// content to the flusher as a flush. Not safe for concurrent use.
type partBuffer struct {
	schema    *schemas.Schema
	layout    *schemas.RawLayout
	ps        *parquet.Schema // rawSchema(layout)
	sorting   parquet.WriterOption
	topic     string
	partition int32
	lim       limits

	dec *schemas.Decoder
	row schemas.Row

	hours    map[time.Time]*hourFile
	lastFile *hourFile // the file of the last record, in hours
	lastHour int64     // its hour, Unix µs
	dead     map[time.Time]*deadFile
	rows     int // records buffered (rows and dead letters)
	bytes    int64
	full     bool      // some hour file reached max rows or bytes
	oldest   time.Time // wall time the oldest buffered record arrived
	// backlog: the buffer's first record was read with at least
	// backlogLag records behind it in the partition.
	backlog bool

	next     int64 // offset after the last record consumed; -1: none yet
	maxEvent int64 // Unix µs of the latest admitted event time; 0: none

	wall wallClock // admission's reading of the wall clock
}

// wallClock is a partition's reading of the wall clock for admission
// (schemas.Schema.Admit). Reading the clock for every record would cost
// more than a record's decode share, so the reading is reused: the
// partition refreshes it every few records and whenever a record's Kafka
// timestamp is later than it (a trickle after a quiet spell), and add
// re-reads it before refusing an event, so a stale reading never refuses
// an event the wall clock admits. Not safe for concurrent use.
type wallClock struct {
	read func() time.Time // default time.Now
	us   int64            // the last reading, Unix µs; 0: none yet
}

// refresh reads the clock and returns the reading in Unix µs.
func (w *wallClock) refresh() int64 {
	if w.read == nil {
		w.read = time.Now
	}
	w.us = w.read().UnixMicro()
	return w.us
}

// admit judges an event time with the reading, and again with a fresh one
// if the reading would refuse it.
func (w *wallClock) admit(s *schemas.Schema, ts int64) schemas.Verdict {
	if v := s.Admit(ts, w.us); v == schemas.Admitted {
		return v
	}
	return s.Admit(ts, w.refresh())
}

func newPartBuffer(s *schemas.Schema, layout *schemas.RawLayout, ps *parquet.Schema, topic string, partition int32, lim limits, next int64, maxEvent time.Time) *partBuffer {
	p := &partBuffer{
		schema: s, layout: layout, ps: ps, topic: topic, partition: partition, lim: lim,
		// Rows of a file are sorted by event time; the offset breaks ties
		// so a file's content is deterministic.
		sorting: parquet.SortingWriterConfig(parquet.SortingColumns(
			parquet.Ascending(s.Time), parquet.Ascending(schemas.ColOffset))),
		dec:   schemas.NewBorrowingDecoder(s), // rows are copied into their columns at once
		hours: map[time.Time]*hourFile{},
		dead:  map[time.Time]*deadFile{},
		next:  next,
	}
	if !maxEvent.IsZero() {
		p.maxEvent = maxEvent.UnixMicro()
	}
	return p
}

// refusal is the dead-letter error text of an event admission refused.
func refusal(s *schemas.Schema, v schemas.Verdict, ts, nowMicros int64) string {
	at, now := time.UnixMicro(ts).UTC().Format(time.RFC3339Nano), time.UnixMicro(nowMicros).UTC().Format(time.RFC3339)
	if v == schemas.Future {
		maxFuture := s.MaxFuture
		if maxFuture <= 0 {
			maxFuture = schemas.DefaultMaxFuture
		}
		return fmt.Sprintf("event time %s is more than max_future (%s) ahead of the wall clock (%s)", at, maxFuture, now)
	}
	return fmt.Sprintf("event time %s is in a sealed hour: it ended at or before the wall clock (%s) minus the schema's retention (%s)",
		at, now, s.Retention)
}

// add buffers one record, decoded into its event hour or, if it does not
// decode or admission refuses its event time, into the dead letters (with
// the reason). It reports whether the record was dead. Only admitted
// events move maxEvent, and with it the watermark.
func (p *partBuffer) add(rec record, now time.Time) (dead bool) {
	if p.rows == 0 {
		p.oldest = now
	}
	ingest := rec.Time
	if ingest.IsZero() {
		ingest = now
	}
	size := int64(len(rec.Value)) + rowOverhead
	p.rows++
	p.bytes += size
	p.next = rec.Offset + 1
	if err := p.dec.Decode(rec.Value, &p.row); err != nil {
		p.addDead(rec, ingest, raw.ReasonMalformed, err.Error())
		return true
	}
	ts := p.schema.TimeMicros(&p.row)
	if v := p.wall.admit(p.schema, ts); v != schemas.Admitted {
		p.addDead(rec, ingest, v.String(), refusal(p.schema, v, ts, p.wall.us))
		return true
	}
	if ts > p.maxEvent {
		p.maxEvent = ts
	}
	// Consecutive records mostly share their hour: the last one's file is
	// kept at hand, saving the map lookup.
	hourMicros := ts - ts%hourMicrosLen
	if ts < 0 && ts%hourMicrosLen != 0 {
		hourMicros -= hourMicrosLen // floor, not truncation toward zero
	}
	f := p.lastFile
	if f == nil || hourMicros != p.lastHour {
		h := time.UnixMicro(hourMicros).UTC()
		f = p.hours[h]
		if f == nil {
			f = &hourFile{hour: h, ps: p.ps, sorting: p.sorting, timeField: p.schema.TimeIndex(),
				cols: p.layout.NewBuffer(p.partition), first: rec.Offset}
			p.hours[h] = f
		}
		p.lastFile, p.lastHour = f, hourMicros
	}
	f.cols.Append(&p.row, rec.Offset, ingest.UnixMicro())
	f.last = rec.Offset
	f.rows++
	f.bytes += size
	if f.rows >= p.lim.maxFileRows || f.bytes >= p.lim.maxFileBytes {
		p.full = true
	}
	return false
}

// addDead files a record under the dead letters of its ingest hour.
func (p *partBuffer) addDead(rec record, ingest time.Time, reason, msg string) {
	h := ingest.UTC().Truncate(time.Hour)
	d := p.dead[h]
	if d == nil {
		d = &deadFile{hour: h, first: rec.Offset}
		p.dead[h] = d
	}
	d.last = rec.Offset
	d.recs = append(d.recs, raw.DeadLetter{Topic: p.topic, Partition: p.partition, Offset: rec.Offset,
		Reason: reason, Error: msg, Raw: bytes.Clone(rec.Value), IngestedAt: ingest.UTC().Truncate(time.Microsecond)})
}

// due reports whether the buffer must be cut now: a file reached its row or
// byte limit, or the oldest record has waited max_file_age.
func (p *partBuffer) due(now time.Time) bool {
	return p.full || (p.rows > 0 && now.Sub(p.oldest) >= p.lim.maxFileAge)
}

// backlogLag is how far behind its partition's end a buffer's first
// record must be read for the buffer to count as part of a backlog.
const backlogLag = 1000

// drainable reports whether the buffer is worth writing as soon as its
// partition catches up and goes quiet: it began in a backlog, or it holds
// an eighth of a file's row or byte limit. A slow stream's buffer is
// neither, so a lull in a slow stream writes no small file.
func (p *partBuffer) drainable() bool {
	return p.backlog || p.rows >= p.lim.maxFileRows/8 || p.bytes >= p.lim.maxFileBytes/8
}

// deadline is when the age limit will make the buffer due (zero if empty).
func (p *partBuffer) deadline() time.Time {
	if p.rows == 0 {
		return time.Time{}
	}
	return p.oldest.Add(p.lim.maxFileAge)
}

// flush is what one flush of one partition writes: its hour files and dead
// letters, then the checkpoint that says everything below next is stored.
type flush struct {
	schema    *schemas.Schema
	topic     string
	partition int32
	files     []*hourFile
	dead      []*deadFile
	rows      int
	bytes     int64 // buffered bytes to release once stored
	next      int64
	maxEvent  time.Time
	caughtUp  bool      // the partition had no lag when cut
	cutAt     time.Time // wall time of the cut
}

// cut moves the buffered records into a flush and empties the buffer.
func (p *partBuffer) cut(now time.Time, caughtUp bool) *flush {
	b := &flush{schema: p.schema, topic: p.topic, partition: p.partition, rows: p.rows, bytes: p.bytes,
		next: p.next, caughtUp: caughtUp, cutAt: now}
	if p.maxEvent != 0 {
		b.maxEvent = time.UnixMicro(p.maxEvent).UTC()
	}
	for _, f := range p.hours {
		b.files = append(b.files, f)
	}
	for _, d := range p.dead {
		b.dead = append(b.dead, d)
	}
	sort.Slice(b.files, func(i, j int) bool { return b.files[i].hour.Before(b.files[j].hour) })
	sort.Slice(b.dead, func(i, j int) bool { return b.dead[i].hour.Before(b.dead[j].hour) })
	p.hours = map[time.Time]*hourFile{}
	p.lastFile = nil
	p.dead = map[time.Time]*deadFile{}
	p.rows, p.bytes, p.full, p.oldest, p.backlog = 0, 0, false, time.Time{}, false
	return b
}

// key is the lake key of an hour file.
func (b *flush) key(f *hourFile) string {
	return lake.RawFile{Schema: b.schema.Name, Hour: f.hour, Topic: b.topic, Partition: b.partition, First: f.first, Last: f.last}.Key()
}

func (b *flush) deadKey(d *deadFile) string {
	return lake.DeadletterKey(b.schema.Name, d.hour, b.topic, b.partition, d.first, d.last)
}

// encodeHour writes an hour file's rows, sorted by event time then
// offset, as Parquet.
func encodeHour(f *hourFile) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(int(f.bytes / 8))
	if f.cols == nil { // a merge's rows
		sort.Sort(f.buf)
		w := parquet.NewWriter(&out, f.buf.Schema())
		if _, err := w.WriteRowGroup(f.buf); err != nil {
			return nil, fmt.Errorf("write rows: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("close: %w", err)
		}
		return out.Bytes(), nil
	}
	// Sorting a permutation moves 4 bytes per row instead of every
	// column's cells, and the columns are then written in that order
	// straight into the writer, with no intermediate row or buffer.
	order := sortedOrder(f.cols.Int64s(f.timeField, nil), f.cols.Offsets(nil))
	// Page headers carry no statistics: the column index and the chunk
	// statistics hold the same bounds, and computing them twice per page
	// cost about a tenth of the encoding.
	w := parquet.NewWriter(&out, f.ps, f.sorting, parquet.DataPageStatistics(false))
	if err := f.cols.WriteColumns(w.ColumnWriters(), order); err != nil {
		return nil, fmt.Errorf("write rows: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return out.Bytes(), nil
}

// encodeDead writes dead letters as Parquet.
func encodeDead(d *deadFile) ([]byte, error) {
	var out bytes.Buffer
	w := parquet.NewGenericWriter[raw.DeadLetter](&out)
	if _, err := w.Write(d.recs); err != nil {
		return nil, fmt.Errorf("write dead letters: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return out.Bytes(), nil
}

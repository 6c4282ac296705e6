package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

// State is a view's views/{view}/_state.json: what recompute has done, so
// an unchanged hour is never recomputed and a changed one always is.
type State struct {
	// Fingerprint is the view definition the hours were computed with.
	Fingerprint string `json:"fingerprint"`
	// Boundary is B: batch serves [.., B), speed serves [B, ..).
	Boundary time.Time `json:"boundary"`
	// Hours by start, RFC 3339 UTC ("2026-11-27T09:00:00Z").
	Hours map[string]HourState `json:"hours"`

	// etag is the ETag of the _state.json this was read from ("": none
	// existed), which WriteState's conditional write must still match.
	etag string
}

// HourState records one computed hour.
type HourState struct {
	// Input fingerprints the raw files read (keys and sizes).
	Input string `json:"input"`
	// Rows in the view file; 0 means the hour had no rows and has no file.
	Rows int64 `json:"rows"`
	// Version counts rewrites of the hour's view file, from 1; a reader's
	// cache is keyed by it.
	Version int64 `json:"version"`
	// Final: computed after the hour closed, from every file it had then.
	Final bool `json:"final"`
	// Fingerprint is the view definition the hour's file was computed
	// with; empty in states written before it was recorded, where it is
	// State.Fingerprint. It differs from State.Fingerprint only for a
	// sealed hour after the definition changed: such an hour is never
	// recomputed, and readers refuse to serve it under the new definition
	// (ErrSealedDefinition) rather than answer wrong or zero numbers.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Sealed: retention has begun deleting the hour's raw data
	// (raw.Seal), so recompute never rebuilds it from what is left.
	Sealed bool `json:"sealed,omitempty"`
	// Token is the fencing token of the hour lease the entry was written
	// under, in a run shared by several runners (recompute.Leaser); a
	// writer holding an earlier one may not replace the entry. Kept
	// across writes made without hour leases.
	Token int64 `json:"token,omitempty"`
}

// ErrSealedDefinition is returned by Reader.Rows for a range holding a
// sealed hour computed under an earlier view definition: its raw data is
// past retention, so it cannot be recomputed under the current one.
var ErrSealedDefinition = errors.New("views: a sealed hour was computed under an earlier view definition and cannot be recomputed (its raw data is past retention)")

// Servable reports whether the hour's file answers the state's current
// definition: false only for a sealed hour computed under another one.
func (s *State) Servable(h HourState) bool {
	return h.Fingerprint == "" || h.Fingerprint == s.Fingerprint || !h.Sealed
}

// HourKey is an hour's key in State.Hours.
func HourKey(hour time.Time) string { return hour.UTC().Truncate(time.Hour).Format(time.RFC3339) }

// Hour returns the state of an hour.
func (s *State) Hour(hour time.Time) (HourState, bool) {
	h, ok := s.Hours[HourKey(hour)]
	return h, ok
}

// parseState decodes a _state.json. It checks what readers rely on: hour
// keys are whole UTC hours and counts are not negative.
func parseState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("views: decode state: %w", err)
	}
	if s.Hours == nil {
		s.Hours = map[string]HourState{}
	}
	for k, h := range s.Hours {
		t, err := time.Parse(time.RFC3339, k)
		if err != nil || HourKey(t) != k {
			return nil, fmt.Errorf("views: state: bad hour %q", k)
		}
		if h.Rows < 0 || h.Version < 0 {
			return nil, fmt.Errorf("views: state: hour %s has negative rows or version", k)
		}
	}
	s.Boundary = s.Boundary.UTC()
	return &s, nil
}

// ReadState reads a view's state; a view never computed has an empty one.
// The state remembers the version it was read from, for WriteState.
func ReadState(ctx context.Context, store lake.Store, view string) (*State, error) {
	key := lake.ViewStateKey(view)
	var b []byte
	var etag string
	var err error
	if cs, ok := store.(lake.ConditionalStore); ok {
		b, etag, err = cs.ReadWithETag(ctx, key)
	} else {
		b, err = lake.ReadAll(ctx, store, key) // a reader only (WriteState needs conditional writes)
	}
	if errors.Is(err, lake.ErrNotExist) {
		return &State{Hours: map[string]HourState{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("views: read state: %w", err)
	}
	s, err := parseState(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, key)
	}
	s.etag = etag
	return s, nil
}

// WriteState stores a view's state in one PUT, conditionally (DESIGN §2,
// "Objects a job owns are written conditionally"): only over the version s
// was read from (If-Match on its ETag), or, for a state read when none
// existed, only if there is still none (If-None-Match). A writer whose
// state is older — a recompute runner that lost its lease while another
// wrote — fails with an error wrapping lake.ErrPreconditionFailed and
// writes nothing. On success s remembers the version it wrote, for the
// next write of the same run. The store must have conditional writes.
func WriteState(ctx context.Context, store lake.Store, view string, s *State) error {
	cs, ok := store.(lake.ConditionalStore)
	if !ok {
		return fmt.Errorf("views: write state of %s: lake store %T has no conditional writes", view, store)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("views: encode state of %s: %w", view, err)
	}
	etag, err := lake.PutVersion(ctx, cs, lake.ViewStateKey(view), b, s.etag)
	if errors.Is(err, lake.ErrPreconditionFailed) {
		return fmt.Errorf("views: write state of %s: another writer changed it since it was read: %w", view, err)
	}
	if err != nil {
		return fmt.Errorf("views: write state: %w", err)
	}
	s.etag = etag
	return nil
}

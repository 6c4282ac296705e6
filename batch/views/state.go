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
func ReadState(ctx context.Context, store lake.Store, view string) (*State, error) {
	key := lake.ViewStateKey(view)
	b, err := lake.ReadAll(ctx, store, key)
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
	return s, nil
}

// WriteState stores a view's state in one PUT.
func WriteState(ctx context.Context, store lake.Store, view string, s *State) error {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return fmt.Errorf("views: encode state of %s: %w", view, err)
	}
	if err := lake.PutBytes(ctx, store, lake.ViewStateKey(view), b); err != nil {
		return fmt.Errorf("views: write state: %w", err)
	}
	return nil
}

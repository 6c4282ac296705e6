package raw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

// Seal records which hours of a schema are sealed (DESIGN §2, "Event time
// is bounded"): hours the retention job has begun deleting raw data of.
// What is left of a sealed hour is no longer the hour, so recompute never
// rebuilds its view hour from it, whatever changes (a dirty marker, a new
// or removed file, a new view definition), and admission already refuses
// new events for it (schemas.Schema.Admit, `expired`).
//
// Retention deletes hours oldest first and only ever more of them, so one
// time says it all: every hour before Before is sealed. It is stored per
// schema at SealKey, not in a view's _state.json: raw data belongs to the
// schema, every view over it must see the seal, and the retention job that
// writes it runs under its own lock, apart from recompute (which owns
// _state.json). Retention writes it before it deletes anything, so a crash
// in between leaves an hour sealed with its data whole, never the other
// way round. It only moves forward.
type Seal struct {
	// Before is the first hour not sealed (on the hour); zero: none.
	Before time.Time `json:"before"`
}

// Sealed reports whether the hour starting at hour is sealed.
func (s Seal) Sealed(hour time.Time) bool { return hour.Before(s.Before) }

// SealKey is where a schema's seal is stored: beside the checkpoints, out
// of the raw/ tree that readers glob.
func SealKey(schema string) string { return "_sealed/" + schema + ".json" }

// ReadSeal returns a schema's seal (zero if none was written yet) and its
// ETag, for WriteSeal.
func ReadSeal(ctx context.Context, store lake.Store, schema string) (Seal, string, error) {
	b, etag, err := readVersioned(ctx, store, SealKey(schema))
	if errors.Is(err, lake.ErrNotExist) {
		return Seal{}, "", nil
	}
	if err != nil {
		return Seal{}, "", fmt.Errorf("raw: read seal of %s: %w", schema, err)
	}
	var s Seal
	if err := json.Unmarshal(b, &s); err != nil {
		return Seal{}, "", fmt.Errorf("raw: decode seal %s: %w", SealKey(schema), err)
	}
	s.Before = s.Before.UTC()
	return s, etag, nil
}

// WriteSeal stores a schema's seal over the version etag names ("": none
// yet) and returns the new ETag. It refuses to move the seal back.
func WriteSeal(ctx context.Context, store lake.Store, schema string, s Seal, prev Seal, etag string) (string, error) {
	if s.Before.Before(prev.Before) {
		return "", fmt.Errorf("raw: seal of %s: %v is before %v (a seal never moves back)", schema, s.Before, prev.Before)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("raw: encode seal: %w", err)
	}
	etag, err = writeVersioned(ctx, store, SealKey(schema), b, etag)
	if err != nil {
		return "", fmt.Errorf("raw: write seal of %s: %w", schema, err)
	}
	return etag, nil
}

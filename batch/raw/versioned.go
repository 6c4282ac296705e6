package raw

import (
	"context"
	"fmt"

	"github.com/lambdalake/lambdalake/lake"
)

// The objects a job owns — checkpoints here, the seal, a view's
// _state.json — are written conditionally (DESIGN §2, "Objects a job owns
// are written conditionally"): over the version the writer read (If-Match
// on its ETag), or only if none exists yet (If-None-Match: *). A writer
// that lost its partition or its lease, and so works from an old read,
// fails with lake.ErrPreconditionFailed instead of overwriting its
// successor's work. A store without conditional writes is refused, never
// silently written unconditionally.

// readVersioned reads a whole object and its ETag. A store without
// conditional writes is read plainly (etag ""): reading is safe, the write
// is what needs the condition.
func readVersioned(ctx context.Context, store lake.Store, key string) ([]byte, string, error) {
	if cs, ok := store.(lake.ConditionalStore); ok {
		return cs.ReadWithETag(ctx, key)
	}
	b, err := lake.ReadAll(ctx, store, key)
	return b, "", err
}

// writeVersioned writes body over the version etag names ("" creates the
// object) and returns the new ETag.
func writeVersioned(ctx context.Context, store lake.Store, key string, body []byte, etag string) (string, error) {
	cs, err := conditional(store)
	if err != nil {
		return "", err
	}
	return lake.PutVersion(ctx, cs, key, body, etag)
}

func conditional(store lake.Store) (lake.ConditionalStore, error) {
	cs, ok := store.(lake.ConditionalStore)
	if !ok {
		return nil, fmt.Errorf("lake store %T has no conditional writes (If-Match, If-None-Match)", store)
	}
	return cs, nil
}

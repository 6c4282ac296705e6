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

// readVersioned reads a whole object and its ETag.
func readVersioned(ctx context.Context, store lake.Store, key string) ([]byte, string, error) {
	cs, err := conditional(store)
	if err != nil {
		return nil, "", err
	}
	return cs.ReadWithETag(ctx, key)
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

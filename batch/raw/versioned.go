package raw

import (
	"context"

	"github.com/lambdalake/lambdalake/lake"
)

// TEMPORARY until lake's conditional writes land: plain reads and writes.
func readVersioned(ctx context.Context, store lake.Store, key string) ([]byte, string, error) {
	b, err := lake.ReadAll(ctx, store, key)
	return b, "", err
}

func writeVersioned(ctx context.Context, store lake.Store, key string, body []byte, etag string) (string, error) {
	return "", lake.PutBytes(ctx, store, key, body)
}

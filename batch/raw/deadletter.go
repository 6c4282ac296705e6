package raw

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/lake"
)

// DeadLetter is one undecodable record, as stored under deadletter/: where
// it came from, why it failed, and its bytes untouched, so it can be
// inspected and replayed.
type DeadLetter struct {
	Topic      string    `parquet:"topic,zstd"`
	Partition  int32     `parquet:"partition,zstd"`
	Offset     int64     `parquet:"offset,zstd"`
	Error      string    `parquet:"error,zstd"`
	Raw        []byte    `parquet:"raw,zstd"`
	IngestedAt time.Time `parquet:"ingested_at,timestamp(microsecond),zstd"`
}

// ReadDeadLetters reads every dead letter of a schema. A crash between
// upload and checkpoint can store a record twice, as with raw files;
// entries repeating a (topic, partition, offset) already returned are
// dropped.
func ReadDeadLetters(ctx context.Context, store lake.Store, schema string) ([]DeadLetter, error) {
	prefix := lake.DeadletterPrefix(schema)
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("raw: list dead letters: %w", err)
	}
	type id struct {
		topic     string
		partition int32
		offset    int64
	}
	seen := map[id]bool{}
	var out []DeadLetter
	for _, o := range objs {
		b, err := lake.ReadAll(ctx, store, o.Key)
		if err != nil {
			return nil, fmt.Errorf("raw: read dead letters: %w", err)
		}
		recs, err := parquet.Read[DeadLetter](bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, fmt.Errorf("raw: decode dead letters %s: %w", o.Key, err)
		}
		for _, r := range recs {
			k := id{r.Topic, r.Partition, r.Offset}
			if !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

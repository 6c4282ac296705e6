package raw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

// Checkpoint is a compactor group's progress on one partition, stored at
// lake.CheckpointKey. It is the source of truth for where compaction resumes:
// every record below NextOffset is in the lake.
type Checkpoint struct {
	NextOffset int64 `json:"next_offset"`
	// Watermark is the partition's event-time watermark: its max event time
	// seen minus the schema's lateness, or wall time minus lateness once the
	// partition is caught up. It never moves back.
	Watermark time.Time `json:"watermark"`
	// MaxEvent is the latest event time consumed, kept so a restart does not
	// forget it before the next record arrives.
	MaxEvent time.Time `json:"max_event,omitzero"`
}

// ReadCheckpoint returns a partition's checkpoint; ok is false if there is none yet.
func ReadCheckpoint(ctx context.Context, store lake.Store, group, topic string, partition int32) (cp Checkpoint, ok bool, err error) {
	key := lake.CheckpointKey(group, topic, partition)
	b, err := lake.ReadAll(ctx, store, key)
	return decodeCheckpoint(key, b, err)
}

// ReadCheckpointVersion is ReadCheckpoint for the compactor that owns the
// partition: it also returns the ETag of the checkpoint's object ("" when
// there is none), which its next WriteCheckpoint must still match.
func ReadCheckpointVersion(ctx context.Context, store lake.Store, group, topic string, partition int32) (cp Checkpoint, etag string, ok bool, err error) {
	key := lake.CheckpointKey(group, topic, partition)
	b, etag, err := readVersioned(ctx, store, key)
	cp, ok, err = decodeCheckpoint(key, b, err)
	return cp, etag, ok, err
}

func decodeCheckpoint(key string, b []byte, err error) (cp Checkpoint, ok bool, _ error) {
	if errors.Is(err, lake.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("raw: read checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, false, fmt.Errorf("raw: decode checkpoint %s: %w", key, err)
	}
	return cp, true, nil
}

// WriteCheckpoint stores a partition's checkpoint over the version etag
// names ("": there was none) and returns the new ETag. It fails with
// lake.ErrPreconditionFailed when another compactor wrote the checkpoint
// since: this one lost the partition (a rebalance it has not seen yet) and
// must not move the checkpoint, which says what the lake holds.
func WriteCheckpoint(ctx context.Context, store lake.Store, group, topic string, partition int32, cp Checkpoint, etag string) (string, error) {
	b, err := json.Marshal(cp)
	if err != nil {
		return "", fmt.Errorf("raw: encode checkpoint: %w", err)
	}
	etag, err = writeVersioned(ctx, store, lake.CheckpointKey(group, topic, partition), b, etag)
	if err != nil {
		return "", fmt.Errorf("raw: write checkpoint of %s/%d: %w", topic, partition, err)
	}
	return etag, nil
}

// ReadCheckpoints returns every partition checkpoint of a group on a topic,
// by partition.
func ReadCheckpoints(ctx context.Context, store lake.Store, group, topic string) (map[int32]Checkpoint, error) {
	prefix := lake.CheckpointPrefix(group, topic)
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("raw: list checkpoints: %w", err)
	}
	out := make(map[int32]Checkpoint, len(objs))
	for _, o := range objs {
		name, ok := strings.CutSuffix(path.Base(o.Key), ".json")
		p, err := strconv.ParseInt(name, 10, 32)
		if !ok || err != nil || o.Key != prefix+path.Base(o.Key) {
			continue // not a partition checkpoint
		}
		cp, found, err := ReadCheckpoint(ctx, store, group, topic, int32(p))
		if err != nil {
			return nil, err
		}
		if found {
			out[int32(p)] = cp
		}
	}
	return out, nil
}

// ErrNoWatermark is returned by Watermark while no partition of the topic
// has published a watermark yet.
var ErrNoWatermark = errors.New("raw: no watermark published yet")

// Watermark is the compactor group's event-time watermark for a topic: the
// minimum over its partitions' checkpoints (DESIGN §2). An hour whose end is
// at or before it is closed. The compactor writes every assigned partition's
// checkpoint within compact.max_file_age, idle partitions included, so a
// partition missing here is one never yet assigned; callers that know the
// partition count can check len(ReadCheckpoints(...)) to be stricter.
func Watermark(ctx context.Context, store lake.Store, group, topic string) (time.Time, error) {
	cps, err := ReadCheckpoints(ctx, store, group, topic)
	if err != nil {
		return time.Time{}, err
	}
	var wm time.Time
	for p, cp := range cps {
		if cp.Watermark.IsZero() {
			return time.Time{}, fmt.Errorf("%w: topic %s partition %d", ErrNoWatermark, topic, p)
		}
		if wm.IsZero() || cp.Watermark.Before(wm) {
			wm = cp.Watermark
		}
	}
	if wm.IsZero() {
		return time.Time{}, fmt.Errorf("%w: topic %s", ErrNoWatermark, topic)
	}
	return wm.UTC(), nil
}

package raw

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/lake"
)

// Reasons a record is dead-lettered instead of stored in a raw file.
// Future and Expired are the admission verdicts' names
// (schemas.Verdict.String), which the speed layer also counts its skips
// under, so an operator reads one vocabulary in both layers.
const (
	// ReasonMalformed: the record does not decode with the schema.
	ReasonMalformed = "malformed"
	// ReasonFuture: its event time is more than max_future ahead of the
	// wall clock at ingest.
	ReasonFuture = "future"
	// ReasonExpired: its event time lies in a sealed hour (past the raw
	// lake's retention), which no layer changes any more.
	ReasonExpired = "expired"
)

// DeadLetter is one record the compactor did not store in a raw file, as
// stored under deadletter/: where it came from, why (Reason, and Error in
// words), and its bytes untouched, so it can be inspected and replayed.
type DeadLetter struct {
	Topic     string `parquet:"topic,zstd"`
	Partition int32  `parquet:"partition,zstd"`
	Offset    int64  `parquet:"offset,zstd"`
	// Reason is one of the Reason constants. Files written before
	// reasons existed have no such column: their records read as
	// ReasonMalformed, the only reason there was.
	Reason     string    `parquet:"reason,zstd,dict"`
	Error      string    `parquet:"error,zstd"`
	Raw        []byte    `parquet:"raw,zstd"`
	IngestedAt time.Time `parquet:"ingested_at,timestamp(microsecond),zstd"`
}

// ReadDeadLetters reads every dead letter of a schema. A crash between
// upload and checkpoint can store a record twice, as with raw files;
// entries repeating a (topic, partition, offset) already returned are
// dropped.
func ReadDeadLetters(ctx context.Context, store lake.Store, schema string) ([]DeadLetter, error) {
	objs, err := store.List(ctx, lake.DeadletterPrefix(schema))
	if err != nil {
		return nil, fmt.Errorf("raw: list dead letters: %w", err)
	}
	seen := map[letterID]bool{}
	var out []DeadLetter
	for _, o := range objs {
		recs, err := readDeadFile(ctx, store, o.Key)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			k := letterID{r.Topic, r.Partition, r.Offset}
			if !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

type letterID struct {
	topic     string
	partition int32
	offset    int64
}

// readDeadFile reads one dead-letter file, filling the reason of records
// written before reasons were recorded.
func readDeadFile(ctx context.Context, store lake.Store, key string) ([]DeadLetter, error) {
	b, err := lake.ReadAll(ctx, store, key)
	if err != nil {
		return nil, fmt.Errorf("raw: read dead letters: %w", err)
	}
	recs, err := parquet.Read[DeadLetter](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("raw: decode dead letters %s: %w", key, err)
	}
	for i := range recs {
		if recs[i].Reason == "" {
			recs[i].Reason = ReasonMalformed
		}
	}
	return recs, nil
}

// DeadLetterCount is how many records of a schema were dead-lettered for
// one reason in one ingest hour (the hour dead letters are filed under).
type DeadLetterCount struct {
	Schema string    `json:"schema"`
	Reason string    `json:"reason"`
	Hour   time.Time `json:"hour"`
	Count  int64     `json:"count"`
	// Example is the error text of one of them (the one with the highest
	// offset in the last file read), e.g. what the decoder said or how far
	// ahead of the wall clock the event time was.
	Example string `json:"example"`
}

// DeadLetterSummary counts a lake's dead letters by schema, reason and
// hour, for operators (`lambdalake lake ls deadletter/`, GET
// /v1/deadletters) who should not have to read Parquet to learn that 12
// events were dropped as future. Dead-letter files are immutable (named by
// the offsets they hold), so each is read once and only its counts are
// kept; a listing per call finds new and removed files. Records a crash
// stored twice count once: as with raw files (PlanHour), a file holds every
// dead letter of its hour in its offset range, so an overlap is found from
// the file names, and only a file that partly overlaps an earlier one is
// read again, once per overlap. Safe for concurrent use.
type DeadLetterSummary struct {
	store lake.Store
	mu    sync.Mutex
	files map[string]deadFileCounts // key + "|" + dropped ranges → its counts
}

// deadFileCounts is what one dead-letter file holds (or what is left of it
// after an overlap is dropped), by reason.
type deadFileCounts struct {
	counts   map[string]int64
	examples map[string]string
}

// NewDeadLetterSummary returns a summary over a lake.
func NewDeadLetterSummary(store lake.Store) *DeadLetterSummary {
	return &DeadLetterSummary{store: store, files: map[string]deadFileCounts{}}
}

// Count returns the counts of the given schemas' dead letters, sorted by
// schema, hour and reason.
func (s *DeadLetterSummary) Count(ctx context.Context, schemas []string) ([]DeadLetterCount, error) {
	var out []DeadLetterCount
	keep := map[string]bool{}
	for _, schema := range schemas {
		objs, err := s.store.List(ctx, lake.DeadletterPrefix(schema))
		if err != nil {
			return nil, fmt.Errorf("raw: list dead letters: %w", err)
		}
		type cell struct {
			reason string
			hour   time.Time
		}
		counts := map[cell]*DeadLetterCount{}
		for _, f := range planDeadFiles(objs) {
			if len(f.Drop) == 1 && f.Drop[0] == (OffsetRange{f.First, f.Last}) {
				continue // every record of it is in an earlier file
			}
			cacheKey := f.Key + "|" + fmt.Sprint(f.Drop)
			keep[cacheKey] = true
			fc, err := s.file(ctx, &f, cacheKey)
			if err != nil {
				return nil, err
			}
			for reason, n := range fc.counts {
				c := counts[cell{reason, f.Hour}]
				if c == nil {
					c = &DeadLetterCount{Schema: schema, Reason: reason, Hour: f.Hour}
					counts[cell{reason, f.Hour}] = c
				}
				c.Count += n
				c.Example = fc.examples[reason]
			}
		}
		for _, c := range counts {
			out = append(out, *c)
		}
	}
	s.mu.Lock()
	for k := range s.files {
		if !keep[k] && hasAnyPrefix(k, schemas) {
			delete(s.files, k) // removed by retention, or its overlap changed
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b DeadLetterCount) int {
		return cmp.Or(cmp.Compare(a.Schema, b.Schema), a.Hour.Compare(b.Hour), cmp.Compare(a.Reason, b.Reason))
	})
	return out, nil
}

func hasAnyPrefix(key string, schemas []string) bool {
	for _, schema := range schemas {
		if strings.HasPrefix(key, lake.DeadletterPrefix(schema)) {
			return true
		}
	}
	return false
}

// planDeadFiles orders a schema's dead-letter files as PlanHour orders raw
// files (per hour and partition, by first offset, widest first) and says
// which offsets of each an earlier file holds. Objects that are not
// dead-letter files are left out.
func planDeadFiles(objs []lake.Object) []FilePlan {
	files := make([]FilePlan, 0, len(objs))
	for _, o := range objs {
		// Dead-letter keys are raw keys under another root (DESIGN §3):
		// {root}/{schema}/dt=/hr=/{topic}-{partition}-{first}-{last}.parquet.
		rest, ok := strings.CutPrefix(o.Key, "deadletter/")
		if !ok {
			continue
		}
		rf, err := lake.ParseRawKey("raw/" + rest)
		if err != nil {
			continue
		}
		files = append(files, FilePlan{Key: o.Key, Size: o.Size, RawFile: rf})
	}
	slices.SortFunc(files, func(a, b FilePlan) int {
		return cmp.Or(a.Hour.Compare(b.Hour), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.First, b.First), -cmp.Compare(a.Last, b.Last))
	})
	var covered []OffsetRange
	for i := range files {
		f := &files[i]
		if i == 0 || !f.Hour.Equal(files[i-1].Hour) || f.Topic != files[i-1].Topic || f.Partition != files[i-1].Partition {
			covered = covered[:0]
		}
		f.Drop = intersect(covered, OffsetRange{f.First, f.Last})
		covered = union(covered, OffsetRange{f.First, f.Last})
	}
	return files
}

// file returns the counts of a planned file's records that are not
// dropped, reading the file the first time.
func (s *DeadLetterSummary) file(ctx context.Context, f *FilePlan, cacheKey string) (deadFileCounts, error) {
	s.mu.Lock()
	fc, ok := s.files[cacheKey]
	s.mu.Unlock()
	if ok {
		return fc, nil
	}
	recs, err := readDeadFile(ctx, s.store, f.Key)
	if err != nil {
		return deadFileCounts{}, err
	}
	fc = deadFileCounts{counts: map[string]int64{}, examples: map[string]string{}}
	for _, r := range recs {
		if !f.Keep(r.Offset) {
			continue
		}
		fc.counts[r.Reason]++
		fc.examples[r.Reason] = clip(r.Error, 200)
	}
	s.mu.Lock()
	s.files[cacheKey] = fc
	s.mu.Unlock()
	return fc, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

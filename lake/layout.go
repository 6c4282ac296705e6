package lake

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Key names of DESIGN §3. Hours are UTC and truncated to the hour.

const hourLayout = "dt=2006-01-02/hr=15"

// HourPath is the Hive-style partition of an hour: dt=YYYY-MM-DD/hr=HH.
func HourPath(hour time.Time) string { return hour.UTC().Truncate(time.Hour).Format(hourLayout) }

// parseHourPath reads dt=YYYY-MM-DD/hr=HH back into an hour.
func parseHourPath(p string) (time.Time, error) {
	t, err := time.Parse(hourLayout, p)
	if err != nil {
		return time.Time{}, fmt.Errorf("lake: bad hour partition %q", p)
	}
	return t, nil
}

// RawPrefix is the folder of a schema's raw files.
func RawPrefix(schema string) string { return "raw/" + schema + "/" }

// RawHourPrefix is the folder of one hour's raw files.
func RawHourPrefix(schema string, hour time.Time) string {
	return RawPrefix(schema) + HourPath(hour) + "/"
}

// RawFile names one raw file: which records of which partition it holds.
type RawFile struct {
	Schema    string
	Hour      time.Time
	Topic     string
	Partition int32
	First     int64 // first Kafka offset held (inclusive)
	Last      int64 // last Kafka offset held (inclusive)
}

// Key is raw/{schema}/dt=.../hr=../{topic}-{partition}-{first:020d}-{last:020d}.parquet.
// Zero-padded offsets make key order equal offset order within a partition.
func (f RawFile) Key() string {
	return fmt.Sprintf("%s%s-%d-%020d-%020d.parquet", RawHourPrefix(f.Schema, f.Hour), f.Topic, f.Partition, f.First, f.Last)
}

// ParseRawKey reads a raw file key back. The topic may itself contain dashes,
// so the name is read from the right.
func ParseRawKey(key string) (RawFile, error) {
	bad := fmt.Errorf("lake: not a raw file key: %q", key)
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "raw" {
		return RawFile{}, bad
	}
	hour, err := parseHourPath(parts[2] + "/" + parts[3])
	if err != nil {
		return RawFile{}, bad
	}
	name, ok := strings.CutSuffix(parts[4], ".parquet")
	if !ok {
		return RawFile{}, bad
	}
	f := strings.Split(name, "-")
	if len(f) < 4 {
		return RawFile{}, bad
	}
	n := len(f)
	part, err1 := strconv.ParseInt(f[n-3], 10, 32)
	first, err2 := strconv.ParseInt(f[n-2], 10, 64)
	last, err3 := strconv.ParseInt(f[n-1], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first > last || part < 0 {
		return RawFile{}, bad
	}
	return RawFile{Schema: parts[1], Hour: hour, Topic: strings.Join(f[:n-3], "-"), Partition: int32(part), First: first, Last: last}, nil
}

// CheckpointKey is where a compactor group records a partition's progress.
func CheckpointKey(group, topic string, partition int32) string {
	return fmt.Sprintf("_checkpoints/%s/%s/%d.json", group, topic, partition)
}

// CheckpointPrefix is the folder of a group's checkpoints for a topic.
func CheckpointPrefix(group, topic string) string {
	return fmt.Sprintf("_checkpoints/%s/%s/", group, topic)
}

// DirtyPrefix is the folder of a schema's dirty-hour markers.
func DirtyPrefix(schema string) string { return "_dirty/" + schema + "/" }

// DirtyKey marks an hour that received data after it closed.
func DirtyKey(schema string, hour time.Time) string { return DirtyPrefix(schema) + HourPath(hour) }

// ParseDirtyKey returns the hour a dirty marker names.
func ParseDirtyKey(key string) (schema string, hour time.Time, err error) {
	rest, ok := strings.CutPrefix(key, "_dirty/")
	schema, hp, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return "", time.Time{}, fmt.Errorf("lake: not a dirty key: %q", key)
	}
	hour, err = parseHourPath(hp)
	return schema, hour, err
}

// DeadletterPrefix is the folder of a schema's undecodable records.
func DeadletterPrefix(schema string) string { return "deadletter/" + schema + "/" }

// DeadletterKey names a file of undecodable records of one partition's
// offset range. The hour is the hour they were ingested: a record that
// cannot be decoded has no event time.
func DeadletterKey(schema string, hour time.Time, topic string, partition int32, first, last int64) string {
	return fmt.Sprintf("%s%s/%s-%d-%020d-%020d.parquet", DeadletterPrefix(schema), HourPath(hour), topic, partition, first, last)
}

// ViewPrefix is the folder of a view's files.
func ViewPrefix(view string) string { return "views/" + view + "/" }

// ViewKey is the one file holding a view's rows for an hour.
func ViewKey(view string, hour time.Time) string {
	return ViewPrefix(view) + HourPath(hour) + "/view.parquet"
}

// ViewStateKey holds a view's fingerprint, boundary and per-hour inputs.
func ViewStateKey(view string) string { return ViewPrefix(view) + "_state.json" }

// PartitionHour returns the hour of a key under raw/, deadletter/, views/ or
// _dirty/, read from its dt=/hr= folders.
func PartitionHour(key string) (time.Time, bool) {
	i := strings.Index(key, "dt=")
	if i < 0 || len(key) < i+len("dt=YYYY-MM-DD/hr=HH") {
		return time.Time{}, false
	}
	h, err := parseHourPath(key[i : i+len("dt=YYYY-MM-DD/hr=HH")])
	return h, err == nil
}

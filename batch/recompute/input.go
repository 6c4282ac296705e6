package recompute

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lambdalake/lambdalake/lake"
)

// An hour's input is the list of its raw files: a new, rewritten or removed
// file makes the hour stale.

// rawHours groups listed raw objects by their hour; objects that are not
// raw files are left out, as readers leave them out.
func rawHours(objs []lake.Object) map[time.Time][]lake.Object {
	out := map[time.Time][]lake.Object{}
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".parquet") {
			continue
		}
		rf, err := lake.ParseRawKey(o.Key)
		if err != nil {
			continue
		}
		out[rf.Hour] = append(out[rf.Hour], o)
	}
	return out
}

// inputFingerprint hashes the keys and sizes of an hour's raw files: a new,
// rewritten or removed file changes it.
func inputFingerprint(objs []lake.Object) string {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key + " " + strconv.FormatInt(o.Size, 10) + "\n"
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

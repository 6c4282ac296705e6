package views

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Store lake.Store
	// CacheBytes bounds the decoded view hours kept in memory (roughly);
	// default 256 MiB.
	CacheBytes int64
	// StateTTL is how long a view's _state.json is reused before it is read
	// again; default 2s. B and hour versions are at most this stale.
	StateTTL time.Duration
	// LoadTimeout bounds one load from the lake, which concurrent
	// requests share; default 30s.
	LoadTimeout time.Duration
	Now         func() time.Time // default time.Now
}

// Reader serves batch view rows to the serving layer. View hours are
// immutable per (fingerprint, version), so decoded hours are cached in an
// LRU bounded by size; concurrent misses on one hour load it once. Safe for
// concurrent use.
type Reader struct {
	cfg    ReaderConfig
	loads  singleflight.Group
	mu     sync.Mutex
	lru    *list.List // of *cachedHour, most recent first
	byKey  map[string]*list.Element
	size   int64
	states map[string]cachedState
}

type cachedHour struct {
	key  string
	rows []Row
	// byFirst: the rows are in order of time, then of their first
	// dimension's value, as recompute writes them, so a where on the
	// first dimension finds its rows of each bucket by binary search
	byFirst bool
	size    int64
}

type cachedState struct {
	st *State
	at time.Time
}

// NewReader returns a reader over a lake.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.Store == nil {
		return nil, errors.New("views: reader needs a store")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 256 << 20
	}
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = 2 * time.Second
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reader{cfg: cfg, lru: list.New(), byKey: map[string]*list.Element{}, states: map[string]cachedState{}}, nil
}

// State returns a view's state, reread at most every StateTTL.
func (r *Reader) State(ctx context.Context, view string) (*State, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	c, ok := r.states[view]
	r.mu.Unlock()
	if ok && now.Sub(c.at) < r.cfg.StateTTL {
		return c.st, nil
	}
	v, err, _ := r.loads.Do("state:"+view, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LoadTimeout)
		defer cancel()
		return ReadState(ctx, r.cfg.Store, view)
	})
	if err != nil {
		return nil, err
	}
	st := v.(*State)
	r.mu.Lock()
	r.states[view] = cachedState{st: st, at: now}
	r.mu.Unlock()
	return st, nil
}

// StateAtLeast returns the view's state, read again from the lake (not the
// cache) when the cached boundary is before b. The serving layer reads B
// from Redis, which recompute writes after _state.json; a state cached a
// moment earlier would cut batch rows short of that B.
func (r *Reader) StateAtLeast(ctx context.Context, view string, b time.Time) (*State, error) {
	st, err := r.State(ctx, view)
	if err != nil || !st.Boundary.Before(b) {
		return st, err
	}
	v, err, _ := r.loads.Do("state!:"+view, func() (any, error) {
		return ReadState(ctx, r.cfg.Store, view)
	})
	if err != nil {
		return nil, err
	}
	fresh := v.(*State)
	r.mu.Lock()
	if c, ok := r.states[view]; !ok || !fresh.Boundary.Before(c.st.Boundary) {
		r.states[view] = cachedState{st: fresh, at: r.cfg.Now()}
	}
	r.mu.Unlock()
	return fresh, nil
}

// Rows returns the view's batch rows with buckets in [from, to), cut at B,
// whose dimensions equal where's values (dimension name → value, typed as
// the field: schemas.ParseDimValue). Rows come sorted by t then
// dimensions. The returned rows are shared with the cache: callers must not
// modify them.
func (r *Reader) Rows(ctx context.Context, v *schemas.View, from, to time.Time, where map[string]schemas.Value) ([]Row, error) {
	type cond struct {
		dim int
		val schemas.Value
	}
	var conds []cond
	for name, val := range where {
		d := -1
		for i, dn := range v.Dimensions {
			if dn == name {
				d = i
			}
		}
		if d < 0 {
			return nil, fmt.Errorf("views: view %s has no dimension %q", v.Name, name)
		}
		conds = append(conds, cond{d, val})
	}
	st, err := r.State(ctx, v.Name)
	if err != nil {
		return nil, err
	}
	if st.Boundary.Before(to) {
		to = st.Boundary
	}
	fromUS, toUS := from.UnixMicro(), to.UnixMicro()
	var out []Row
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		hs, ok := st.Hour(h)
		if !ok || hs.Rows == 0 {
			continue
		}
		if !st.Servable(hs) {
			return nil, fmt.Errorf("%w: view %s hour %s (computed with definition %s, the view's is %s)",
				ErrSealedDefinition, v.Name, HourKey(h), hs.Fingerprint, st.Fingerprint)
		}
		hr, err := r.hour(ctx, v, st.Fingerprint, h, hs.Version)
		if err != nil {
			return nil, err
		}
		rows := hr.rows
		if len(conds) == 0 && h.UnixMicro() >= fromUS && h.Add(time.Hour).UnixMicro() <= toUS {
			// The whole hour: serving asks for one hour at a time.
			if out == nil && !h.Add(time.Hour).Before(to) {
				return rows[:len(rows):len(rows)], nil // an append by the caller copies
			}
			out = append(out, rows...)
			continue
		}
		keep := func(row *Row) {
			if row.T < fromUS || row.T >= toUS {
				return
			}
			for _, c := range conds {
				if row.Dims[c.dim] != c.val {
					return
				}
			}
			out = append(out, *row)
		}
		first := slices.IndexFunc(conds, func(c cond) bool { return c.dim == 0 })
		if !hr.byFirst || first < 0 {
			for i := range rows {
				keep(&rows[i])
			}
			continue
		}
		// Each bucket's rows of the first dimension's value are one run.
		typ := firstType(v)
		val := conds[first].val
		for i := 0; i < len(rows); {
			t := rows[i].T
			end := i + sort.Search(len(rows)-i, func(k int) bool { return rows[i+k].T != t })
			lo := i + sort.Search(end-i, func(k int) bool { return schemas.CompareValues(typ, rows[i+k].Dims[0], val) >= 0 })
			for k := lo; k < end && rows[k].Dims[0] == val; k++ {
				keep(&rows[k])
			}
			i = end
		}
	}
	return out, nil
}

// firstType is the type of a view's first dimension.
func firstType(v *schemas.View) schemas.Type {
	f, _ := v.Schema.Field(v.Dimensions[0])
	return f.Type
}

// inFirstOrder reports whether rows are in order of time, then of their
// first dimension's value.
func inFirstOrder(v *schemas.View, rows []Row) bool {
	if len(v.Dimensions) == 0 {
		return false
	}
	typ := firstType(v)
	for i := 1; i < len(rows); i++ {
		a, b := &rows[i-1], &rows[i]
		if a.T > b.T || (a.T == b.T && schemas.CompareValues(typ, a.Dims[0], b.Dims[0]) > 0) {
			return false
		}
	}
	return true
}

// hour returns an hour's rows from the cache or the lake.
func (r *Reader) hour(ctx context.Context, v *schemas.View, fp string, h time.Time, version int64) (*cachedHour, error) {
	key := v.Name + "/" + fp + "/" + HourKey(h) + "/" + strconv.FormatInt(version, 10)
	r.mu.Lock()
	if el, ok := r.byKey[key]; ok {
		r.lru.MoveToFront(el)
		c := el.Value.(*cachedHour)
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	val, err, _ := r.loads.Do(key, func() (any, error) {
		// Other requests may wait on this load: one caller giving up must
		// not fail them all.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LoadTimeout)
		defer cancel()
		b, err := lake.ReadAll(ctx, r.cfg.Store, lake.ViewKey(v.Name, h))
		if err != nil {
			return nil, fmt.Errorf("views: read view %s hour %s: %w", v.Name, HourKey(h), err)
		}
		rows, err := decode(ctx, v, b)
		if err != nil {
			return nil, fmt.Errorf("views: decode view %s hour %s: %w", v.Name, HourKey(h), err)
		}
		// A newer version may already have replaced the file; it is newer
		// data, so serve it, but cache it under the version that was asked
		// for only: the next state read brings the right key.
		c := &cachedHour{key: key, rows: rows, byFirst: inFirstOrder(v, rows), size: rowsSize(rows, len(b))}
		r.put(c)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*cachedHour), nil
}

// rowsSize estimates the memory an hour's rows hold: the row headers and
// values plus the file's bytes, which strings and sketches point into.
func rowsSize(rows []Row, fileBytes int) int64 {
	if len(rows) == 0 {
		return int64(fileBytes)
	}
	per := 80 + 32*(len(rows[0].Dims)+len(rows[0].Values)) + 24*len(rows[0].HLL)
	var sketches int
	for i := range rows {
		for _, h := range rows[i].HLL {
			sketches += len(h)
		}
	}
	return int64(len(rows)*per + sketches + fileBytes)
}

func (r *Reader) put(c *cachedHour) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byKey[c.key]; ok {
		return
	}
	r.byKey[c.key] = r.lru.PushFront(c)
	r.size += c.size
	for r.size > r.cfg.CacheBytes && r.lru.Len() > 1 {
		el := r.lru.Back()
		old := el.Value.(*cachedHour)
		r.lru.Remove(el)
		delete(r.byKey, old.key)
		r.size -= old.size
	}
}

// cacheStats reports the cache's entries and estimated bytes.
func (r *Reader) cacheStats() (entries int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len(), r.size
}

package speed

import (
	"container/list"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambdalake/lambdalake/internal/prom"
)

// lru is the Reader's cache of decoded buckets and rollups, bounded in
// bytes: what is least recently used goes first once the sizes of the
// entries pass the budget. Sizes are estimates of what an entry holds
// (slices, strings, sketches), not exact heap accounting; a rollup that
// shares a bucket's sketch bytes counts them again, so the bound errs high.
type lru struct {
	mu     sync.Mutex
	budget int64
	size   int64
	ll     *list.List // front: most recently used
	items  map[string]*list.Element
	m      *readMetrics
}

type lruItem struct {
	key  string
	val  sized
	size int64
}

// sized is anything the cache holds.
type sized interface{ bytes() int64 }

func newLRU(budget int64, m *readMetrics) *lru {
	return &lru{budget: budget, ll: list.New(), items: map[string]*list.Element{}, m: m}
}

// get returns the entry under key, if any, and marks it used.
func (c *lru) get(key string) (sized, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruItem).val, true
}

// put stores val under key (replacing what was there) and evicts the least
// recently used entries past the budget. An entry larger than the whole
// budget is not kept.
func (c *lru) put(key string, val sized) {
	n := val.bytes() + int64(len(key)) + 64
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		it := e.Value.(*lruItem)
		c.size -= it.size
		c.ll.Remove(e)
		delete(c.items, key)
	}
	if n <= c.budget {
		c.items[key] = c.ll.PushFront(&lruItem{key: key, val: val, size: n})
		c.size += n
	}
	for c.size > c.budget {
		e := c.ll.Back()
		it := e.Value.(*lruItem)
		c.ll.Remove(e)
		delete(c.items, it.key)
		c.size -= it.size
		c.m.evictions.Inc()
	}
	c.m.size.Set(float64(c.size))
	c.m.entries.Set(float64(len(c.items)))
}

// dropPrefix removes every entry whose key starts with prefix (a view whose
// hot data was rebuilt).
func (c *lru) dropPrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			c.size -= e.Value.(*lruItem).size
			c.ll.Remove(e)
			delete(c.items, k)
		}
	}
	c.m.size.Set(float64(c.size))
	c.m.entries.Set(float64(len(c.items)))
}

// bytesUsed is the sum of the entries' sizes.
func (c *lru) bytesUsed() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// readMetrics are the Reader's: the cache's size and how queries used it.
type readMetrics struct {
	size      prometheus.Gauge
	entries   prometheus.Gauge
	evictions prometheus.Counter
	lookups   *prometheus.CounterVec // kind (bucket, rollup), result (hit, miss)
	fetched   prometheus.Counter     // buckets read from Redis
}

func newReadMetrics(reg prometheus.Registerer) (*readMetrics, error) {
	m := &readMetrics{
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdalake_speed_read_cache_bytes", Help: "Estimated bytes held by the speed reader's cache of decoded buckets and rollups (bounded by speed.read_cache).",
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambdalake_speed_read_cache_entries", Help: "Entries in the speed reader's cache.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lambdalake_speed_read_cache_evictions_total", Help: "Entries the speed reader's cache dropped to stay within its byte budget.",
		}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambdalake_speed_read_cache_lookups_total", Help: "Speed reader cache lookups by kind (bucket: a decoded Redis bucket; rollup: a bucket or step rolled up to a query's group_by and where) and result (hit, miss).",
		}, []string{"kind", "result"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lambdalake_speed_read_buckets_fetched_total", Help: "Buckets (per shard) the speed reader read from Redis: new ones and those whose version changed.",
		}),
	}
	if reg == nil {
		return m, nil // unregistered: counted, not exported
	}
	var err error
	if m.size, err = prom.Register(reg, m.size); err != nil {
		return nil, err
	}
	if m.entries, err = prom.Register(reg, m.entries); err != nil {
		return nil, err
	}
	if m.evictions, err = prom.Register(reg, m.evictions); err != nil {
		return nil, err
	}
	if m.lookups, err = prom.Register(reg, m.lookups); err != nil {
		return nil, err
	}
	if m.fetched, err = prom.Register(reg, m.fetched); err != nil {
		return nil, err
	}
	return m, nil
}

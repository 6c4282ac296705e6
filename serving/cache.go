package serving

import (
	lru "container/list"
	"sync"
	"unsafe"

	"github.com/lambdalake/lambdalake/schemas"
)

// byteCache is a map bounded by the bytes its values hold, not by their
// number: one answer of a 31-day query grouped by two dimensions weighs as
// much as thousands of small ones. Past max, the least recently used
// entries go; a value larger than max is not kept at all.
type byteCache[V any] struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *lru.List // of *cacheItem[V], most recently used first
	items map[string]*lru.Element
	// counted for the metrics (cacheStats)
	hits, misses, evictions int64
}

type cacheItem[V any] struct {
	key  string
	val  V
	size int64
}

func newByteCache[V any](max int64) *byteCache[V] {
	return &byteCache[V]{max: max, order: lru.New(), items: map[string]*lru.Element{}}
}

func (c *byteCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		c.misses++
		var zero V
		return zero, false
	}
	c.hits++
	c.order.MoveToFront(e)
	return e.Value.(*cacheItem[V]).val, true
}

// put stores val, which holds size bytes.
func (c *byteCache[V]) put(key string, val V, size int64) {
	size += int64(len(key)) + 64 // the key, the list element, the map slot
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.remove(e)
	}
	if size > c.max {
		return
	}
	for c.size+size > c.max {
		c.remove(c.order.Back())
		c.evictions++
	}
	c.items[key] = c.order.PushFront(&cacheItem[V]{key: key, val: val, size: size})
	c.size += size
}

func (c *byteCache[V]) delete(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.remove(e)
	}
}

func (c *byteCache[V]) remove(e *lru.Element) {
	it := c.order.Remove(e).(*cacheItem[V])
	delete(c.items, it.key)
	c.size -= it.size
}

// stats are the cache's counters, for the metrics.
func (c *byteCache[V]) stats() cacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cacheStats{hits: c.hits, misses: c.misses, evictions: c.evictions, bytes: c.size, entries: int64(len(c.items))}
}

type cacheStats struct{ hits, misses, evictions, bytes, entries int64 }

// bytes is what the cache holds now, by its own accounting.
func (c *byteCache[V]) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

const valueBytes = int64(unsafe.Sizeof(schemas.Value{}))

// rowsBytes estimates the memory of rolled-up rows: each row's slices and
// values, and the text of string values.
func rowsBytes(rows []outRow) int64 {
	n := int64(len(rows)) * int64(unsafe.Sizeof(outRow{}))
	for i := range rows {
		r := &rows[i]
		n += int64(len(r.dims)+len(r.vals)) * valueBytes
		for _, d := range r.dims {
			n += int64(len(d.Str))
		}
	}
	return n
}

package querymix

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LoadConfig says how to send the load.
type LoadConfig struct {
	Base     string // http://host:port
	Token    string // bearer token with read:views
	Clients  int
	Duration time.Duration
	// Next returns the next request path (Mix.Next).
	Next func() (path string, repeat bool)
	// Rate, when above 0, paces the load (open loop): a request is due
	// every 1/Rate s whatever the answers, the Clients connections send
	// them, and a latency counts from when its request was due, so time a
	// request waited for a free connection counts too (no coordinated
	// omission). 0 sends back to back (closed loop): latency then grows
	// with Clients / throughput and measures queueing more than the server.
	Rate float64
	// Live, when set, tells the requests whose latencies also go to
	// LoadResult.Live (TouchesHour, say).
	Live func(path string) bool
}

// LoadResult is what the clients saw.
type LoadResult struct {
	Requests, Errors, Repeats int
	Elapsed                   time.Duration
	Latencies                 []time.Duration // of the successful requests, sorted
	FirstError                string
	// Live are the latencies of the requests Live picked, sorted.
	Live []time.Duration
	// Seconds holds, per second of the run (by when a request was due),
	// the latencies of the requests due in it, so a tail can be told from
	// a stall (Worst).
	Seconds [][]time.Duration
}

// SecondsP99 is the p99 in ms of the requests due in each second of the
// run; -1 for a second in which none was.
func (r LoadResult) SecondsP99() []float64 {
	out := make([]float64, len(r.Seconds))
	for i, l := range r.Seconds {
		out[i] = -1
		if len(l) > 0 {
			out[i] = pct(slices.Sorted(slices.Values(l)), 0.99)
		}
	}
	return out
}

// Worst returns the second of the run whose requests had the highest p99,
// that p99 in ms (-1 with no requests), and how many requests were due in it.
func (r LoadResult) Worst() (second int, p99ms float64, n int) {
	p99ms = -1
	for i, p := range r.SecondsP99() {
		if p > p99ms {
			second, p99ms, n = i, p, len(r.Seconds[i])
		}
	}
	return second, p99ms, n
}

// SecondsP99Text lists each second's p99 in whole ms ("-" for a second
// without requests).
func (r LoadResult) SecondsP99Text() string {
	var b strings.Builder
	for i, p := range r.SecondsP99() {
		if i > 0 {
			b.WriteByte(' ')
		}
		if p < 0 {
			b.WriteByte('-')
			continue
		}
		fmt.Fprintf(&b, "%d", int64(p))
	}
	return b.String()
}

// RPS is successful requests per second.
func (r LoadResult) RPS() float64 { return float64(len(r.Latencies)) / r.Elapsed.Seconds() }

// Pct is the p-th latency percentile in ms (p in [0, 1]).
func (r LoadResult) Pct(p float64) float64 { return pct(r.Latencies, p) }

// LivePct is Pct of the requests Live picked.
func (r LoadResult) LivePct(p float64) float64 { return pct(r.Live, p) }

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Microseconds()) / 1000
}

// Client is an HTTP client sized for clients connections to one server.
func Client(clients int) *http.Client {
	// Answers can be large: a large read buffer reads one in a few
	// syscalls (the client shares the machine with the server).
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
		DisableCompression: true, ReadBufferSize: 256 << 10}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Get sends one query and reads the whole answer; a non-200 is an error
// carrying the status and the start of the body.
func Get(ctx context.Context, c *http.Client, url, token string) ([]byte, error) {
	b, _, err := GetHeader(ctx, c, url, token)
	return b, err
}

// GetHeader is Get that also returns the answer's headers.
func GetHeader(ctx context.Context, c *http.Client, url, token string) ([]byte, http.Header, error) {
	resp, err := do(ctx, c, url, token)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != 200 {
		return nil, nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return b, resp.Header, nil
}

// do sends a GET with the bearer token.
func do(ctx context.Context, c *http.Client, url, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return c.Do(req)
}

// drain sends one query and reads its answer whole into buf's space and
// away (a load's clients look at the status only): no buffer grows per
// answer, so the clients cost the machine little beside the server. A
// non-200, or an answer shorter than its Content-Length, is an error.
func drain(ctx context.Context, c *http.Client, url, token string, buf []byte) error {
	resp, err := do(ctx, c, url, token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
	if err != nil {
		return err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("answer of %d bytes, Content-Length %d", n, resp.ContentLength)
	}
	return nil
}

// Run sends the load: Clients goroutines, each sending Next's queries back
// to back (or as Rate paces them) until Duration has passed, reading every
// answer whole.
func Run(ctx context.Context, cfg LoadConfig) LoadResult {
	start := time.Now()
	if cfg.Rate <= 0 {
		end := start.Add(cfg.Duration)
		return send(ctx, cfg, start, func() (request, bool) {
			if !time.Now().Before(end) || ctx.Err() != nil {
				return request{}, false
			}
			path, repeat := cfg.Next()
			return request{at: time.Now(), path: path, repeat: repeat}, true
		}, nil)
	}
	// Paced: one goroutine makes a request due every 1/Rate s, with room
	// for every request of the run, so a slow server delays requests but
	// never stops them being due.
	queue := make(chan request, int(cfg.Rate*cfg.Duration.Seconds())+1)
	pace := func() {
		defer close(queue)
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		for i := 0; ctx.Err() == nil; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.Sub(start) >= cfg.Duration {
				return
			}
			time.Sleep(time.Until(at))
			path, repeat := cfg.Next()
			queue <- request{at: at, path: path, repeat: repeat}
		}
	}
	return send(ctx, cfg, start, func() (request, bool) { r, ok := <-queue; return r, ok }, pace)
}

// request is one query to send and when it was due: a latency counts from
// then.
type request struct {
	at     time.Time
	path   string
	repeat bool
}

// send runs Clients goroutines taking requests from next until it has
// none, while produce (if any) runs in this goroutine, and gathers what
// they saw.
func send(ctx context.Context, cfg LoadConfig, start time.Time, next func() (request, bool), produce func()) LoadResult {
	c := Client(cfg.Clients)
	defer c.Transport.(*http.Transport).CloseIdleConnections()
	var mu sync.Mutex
	var res LoadResult
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine LoadResult
			buf := make([]byte, 256<<10)
			for {
				r, ok := next()
				if !ok {
					break
				}
				if ctx.Err() != nil {
					continue // drain: the paced producer stops too
				}
				if r.repeat {
					mine.Repeats++
				}
				if err := drain(ctx, c, cfg.Base+r.path, cfg.Token, buf); err != nil {
					mine.Errors++
					if mine.FirstError == "" {
						mine.FirstError = r.path + ": " + err.Error()
					}
					continue
				}
				lat := time.Since(r.at)
				mine.Latencies = append(mine.Latencies, lat)
				if cfg.Live != nil && cfg.Live(r.path) {
					mine.Live = append(mine.Live, lat)
				}
				sec := int(r.at.Sub(start) / time.Second)
				for len(mine.Seconds) <= sec {
					mine.Seconds = append(mine.Seconds, nil)
				}
				mine.Seconds[sec] = append(mine.Seconds[sec], lat)
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, mine.Latencies...)
			res.Live = append(res.Live, mine.Live...)
			for len(res.Seconds) < len(mine.Seconds) {
				res.Seconds = append(res.Seconds, nil)
			}
			for i, l := range mine.Seconds {
				res.Seconds[i] = append(res.Seconds[i], l...)
			}
			res.Errors += mine.Errors
			res.Repeats += mine.Repeats
			if res.FirstError == "" {
				res.FirstError = mine.FirstError
			}
			mu.Unlock()
		}()
	}
	if produce != nil {
		produce()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	slices.Sort(res.Live)
	res.Requests = len(res.Latencies) + res.Errors
	return res
}

// CacheStats are the serving layer's counters of how answers were made.
type CacheStats struct {
	Hits, Stale, Shared, Computed float64
	Found                         bool // the server exports these metrics
}

// Sub is s minus an earlier reading.
func (s CacheStats) Sub(b CacheStats) CacheStats {
	return CacheStats{Hits: s.Hits - b.Hits, Stale: s.Stale - b.Stale, Shared: s.Shared - b.Shared, Computed: s.Computed - b.Computed, Found: s.Found}
}

// HitRate is the share of answers not computed for their request: fresh
// and stale cache hits and answers shared with an identical request in
// flight (singleflight).
func (s CacheStats) HitRate() float64 {
	n := s.Hits + s.Stale + s.Shared + s.Computed
	if n == 0 {
		return 0
	}
	return (s.Hits + s.Stale + s.Shared) / n
}

// ScrapeCache reads the serving layer's cache counters from base+"/metrics".
func ScrapeCache(ctx context.Context, base string) (CacheStats, error) {
	m, err := Scrape(ctx, base+"/metrics")
	if err != nil {
		return CacheStats{}, err
	}
	s := CacheStats{Hits: m["lambdalake_serving_cache_hits_total"], Stale: m["lambdalake_serving_cache_stale_total"],
		Shared: m["lambdalake_serving_singleflight_shared_total"], Computed: m["lambdalake_serving_compute_seconds_count"]}
	_, s.Found = m["lambdalake_serving_compute_seconds_count"]
	return s, nil
}

// Scrape reads a Prometheus text endpoint; each series' value is added
// under its metric name (labels dropped, so a labelled family sums up).
func Scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querymix: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		x, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[name] += x
	}
	return out, sc.Err()
}

// ScrapeSeries sums the values of the series whose line starts with prefix, e.g.
// `lambdalake_job_runs_total{job="recompute",outcome="ok"}`.
func ScrapeSeries(ctx context.Context, url, prefix string) (float64, error) {
	series, err := ScrapeEach(ctx, url, prefix)
	var sum float64
	for _, x := range series {
		sum += x
	}
	return sum, err
}

// ScrapeEach reads, in one request, the value of every series whose line
// starts with prefix, by its name and labels as the endpoint prints them
// (`lambdalake_compact_stored_offset{partition="0",topic="t"}`).
func ScrapeEach(ctx context.Context, url, prefix string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querymix: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if x, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] += x
		}
	}
	return out, sc.Err()
}

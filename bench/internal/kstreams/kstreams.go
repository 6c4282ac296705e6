// Package kstreams runs the Kafka Streams peer of the speed benchmark (issue
// 19.1; the Java program in bench/peer, built by `make peer`) and reads its
// results back through the peer's interactive-query endpoint, so that bench
// speed can check the peer did the same work as our speed layer.
package kstreams

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdalake/lambdalake/bench/internal/launch"
	"github.com/lambdalake/lambdalake/bench/internal/procstat"
)

// Dir is the peer's Maven project, from the repo root.
const Dir = "bench/peer"

// Config says what the peer consumes and how it is tuned (see
// bench/peer/README.md for what each setting measured).
type Config struct {
	Dir       string // default Dir
	Bootstrap string
	Topic     string
	AppID     string
	// Expect is how many records the store must hold for the run to end.
	Expect int64
	// Settings passed through as --name=value (threads, cache-bytes,
	// commit-ms, guarantee, store, hll-lgk, max-poll-records, linger-ms).
	Settings map[string]string
	JVMArgs  []string
}

// Result is the peer's own account of its run.
type Result struct {
	Read, Malformed, Aggregated int64
	Dropped                     float64       // Kafka Streams' dropped-records-total (late records among them)
	Elapsed                     time.Duration // first record read to the commit after the last aggregate
	// EPS is Read / Elapsed: from the first record read until the results
	// of all are in the window store and committed with their offsets
	// (exactly_once_v2), as ours is counted until Redis holds them.
	EPS float64
	// AggregatedEPS ends at the last aggregate update instead (for the
	// write-back buffer, before it reaches the store).
	AggregatedEPS float64
	PeakRSS       int64
	CPU           time.Duration
}

// Peer is a running peer.
type Peer struct {
	cfg  Config
	proc *launch.Proc
	mu   sync.Mutex
	addr string
	done chan Result
	line chan string
}

// Built says whether the peer has been built (`make peer`).
func Built(dir string) bool {
	if dir == "" {
		dir = Dir
	}
	_, err1 := os.Stat(filepath.Join(dir, "target", "classes", "io", "lambdalake", "bench", "peer", "RevenuePeer.class"))
	_, err2 := os.Stat(filepath.Join(dir, "target", "libs"))
	return err1 == nil && err2 == nil
}

// Start starts the peer; it begins consuming at once.
func Start(cfg Config) (*Peer, error) {
	if cfg.Dir == "" {
		cfg.Dir = Dir
	}
	if !Built(cfg.Dir) {
		return nil, errors.New("kstreams: the peer is not built: run `make peer` (Maven)")
	}
	args := append([]string{}, cfg.JVMArgs...)
	args = append(args, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", filepath.Join(cfg.Dir, "target", "classes")+string(os.PathListSeparator)+filepath.Join(cfg.Dir, "target", "libs", "*"),
		"io.lambdalake.bench.peer.RevenuePeer",
		"--bootstrap="+cfg.Bootstrap, "--topic="+cfg.Topic, "--app-id="+cfg.AppID, "--expect="+strconv.FormatInt(cfg.Expect, 10))
	for k, v := range cfg.Settings {
		args = append(args, "--"+k+"="+v)
	}
	p := &Peer{cfg: cfg, done: make(chan Result, 1), line: make(chan string, 16)}
	proc, err := launch.Start(launch.Config{Name: "peer", Path: "java", Args: args,
		OnLine: func(line string) {
			if strings.Contains(line, "ERROR") || strings.Contains(line, "Exception") || os.Getenv("BENCH_VERBOSE") != "" {
				fmt.Fprintln(os.Stderr, "peer:", line)
			}
		},
		Stdout: p.stdout})
	if err != nil {
		return nil, fmt.Errorf("kstreams: %w", err)
	}
	p.proc = proc
	return p, nil
}

// stdout reads the peer's protocol lines: "peer: listening on ADDR ...",
// "peer: done k=v ...", and logs the others.
func (p *Peer) stdout(line string) {
	switch {
	case strings.HasPrefix(line, "peer: listening on "):
		f := strings.Fields(strings.TrimPrefix(line, "peer: listening on "))
		p.mu.Lock()
		p.addr = f[0]
		p.mu.Unlock()
	case strings.HasPrefix(line, "peer: done "):
		kv := map[string]string{}
		for _, f := range strings.Fields(strings.TrimPrefix(line, "peer: done ")) {
			k, v, _ := strings.Cut(f, "=")
			kv[k] = v
		}
		num := func(k string) float64 { x, _ := strconv.ParseFloat(kv[k], 64); return x }
		r := Result{Read: int64(num("read")), Malformed: int64(num("malformed")), Aggregated: int64(num("aggregated")),
			Dropped: num("dropped"), Elapsed: time.Duration(num("committed_s") * float64(time.Second)),
			EPS: num("committed_eps"), AggregatedEPS: num("eps"),
			PeakRSS: procstat.PeakRSS(p.proc.Pid()), CPU: procstat.CPU(p.proc.Pid())}
		fmt.Fprintln(os.Stderr, line)
		p.done <- r
	default:
		fmt.Fprintln(os.Stderr, line)
	}
}

// Wait waits for the peer's done line.
func (p *Peer) Wait(ctx context.Context, timeout time.Duration) (Result, error) {
	select {
	case r := <-p.done:
		return r, nil
	case <-p.proc.Exited():
		return Result{}, errors.New("kstreams: the peer exited before it was done")
	case <-time.After(timeout):
		return Result{}, fmt.Errorf("kstreams: the peer was not done within %s", timeout)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Window is one (window, tenant, country) of the peer's store.
type Window struct {
	T                          int64 `json:"t"` // window start, Unix ms
	Tenant                     string
	Country                    string
	Orders                     int64
	Revenue, Smallest, Biggest float64
	Buyers                     int64
}

// Windows reads every window of the peer's store through its
// interactive-query endpoint.
func (p *Peer) Windows(ctx context.Context) ([]Window, error) {
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	if addr == "" {
		return nil, errors.New("kstreams: the peer never said where it listens")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/windows", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kstreams: query the peer's store: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("kstreams: query the peer's store: status %d", resp.StatusCode)
	}
	var out []Window
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var w Window
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("kstreams: peer window %q: %w", sc.Text(), err)
		}
		out = append(out, w)
	}
	return out, sc.Err()
}

// InternalTopics are the topics Kafka Streams created for the peer (its
// repartition and changelog topics), for the bench to delete.
func (p *Peer) InternalTopics() []string {
	topics := []string{p.cfg.AppID + "-revenue-changelog"}
	if p.cfg.Settings["topology"] == "repartition" {
		topics = append(topics, p.cfg.AppID+"-by-tenant-country-repartition")
	}
	return topics
}

// Stop stops the peer (it closes Kafka Streams and removes its state).
func (p *Peer) Stop() { p.proc.Stop(20 * time.Second) }

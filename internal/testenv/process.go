package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a lambdalake role run as its own OS process by a test, so the
// test can kill it (SIGKILL), freeze it (SIGSTOP) or stop it gracefully,
// the way an operator or a crash would. Its output goes to a file in the
// test's temp dir; it is killed when the test ends if still running.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  string

	exited chan struct{} // closed once the process has exited
	err    error         // its exit status, once exited is closed
}

// StartProcess runs the lambdalake binary with args and env (added to the
// test's own environment) under a name for the logs.
func StartProcess(t testing.TB, name string, env []string, args ...string) *Process {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	f.Close() // the child holds its own descriptor
	p := &Process{Name: name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Err is the exit status once the process has ended (nil before).
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Kill sends SIGKILL and waits for the process to be gone: what a crash or
// the OOM killer does, nothing flushed and no group left.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Freeze stops the process (SIGSTOP) where it is; it does nothing until
// Thaw or Kill. A test freezes a process to look at the state it leaves
// (offsets, checkpoints, leases) knowing it cannot change that state.
func (p *Process) Freeze() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process (SIGCONT).
func (p *Process) Thaw() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Stop asks the process to end (SIGTERM) and waits up to timeout; it
// returns an error if it did not end in time or exited with a failure.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s exited with %w after SIGTERM", p.Name, p.err)
		}
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s still running %v after SIGTERM (killed)", p.Name, timeout)
	}
}

// Tail returns the last n lines of the process's output.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Log returns the process's whole output so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// handedOut are the addresses FreeAddr returned in this process.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// FreeAddr returns a loopback address with a port free at the time of the
// call, for a subprocess to listen on, and never one it returned before:
// the kernel may hand a port just closed out again, and two processes of
// one test were once given the same one.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("testenv: no loopback port not handed out before in 100 tries")
	return ""
}

// Metrics is one scrape of a Prometheus /metrics page: each sample's value
// by its series as the text format prints it, `name{l1="v1",l2="v2"}`
// (labels in the order the page has them; the Go client sorts them).
type Metrics map[string]float64

// ScrapeMetrics reads http://addr/metrics.
func ScrapeMetrics(ctx context.Context, addr string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format: comments and blank lines
// are skipped, a sample is `series value [timestamp]`.
func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The series ends at the closing brace of its labels, if any;
		// label values may hold spaces.
		end := strings.IndexByte(line, ' ')
		if i := strings.IndexByte(line, '{'); i >= 0 && i < end {
			j := strings.LastIndexByte(line, '}')
			if j < 0 {
				return nil, fmt.Errorf("metrics: unterminated labels: %q", line)
			}
			end = j + 1
		}
		if end < 0 || end >= len(line) {
			return nil, fmt.Errorf("metrics: no value: %q", line)
		}
		fields := strings.Fields(line[end:])
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: bad value in %q: %w", line, err)
		}
		m[line[:end]] = v
	}
	return m, sc.Err()
}

// Series returns the samples of one metric name: labels (the text between
// the braces, "" for none) → value.
func (m Metrics) Series(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if k == name {
			out[""] = v
		} else if rest, ok := strings.CutPrefix(k, name+"{"); ok {
			out[strings.TrimSuffix(rest, "}")] = v
		}
	}
	return out
}

// Sum adds up every sample of one metric name.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for _, v := range m.Series(name) {
		s += v
	}
	return s
}

// Label returns the value of one label in a Series key (`a="x",b="y"`).
func Label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if v, ok := strings.CutPrefix(kv, name+"=\""); ok {
			return strings.TrimSuffix(v, "\"")
		}
	}
	return ""
}

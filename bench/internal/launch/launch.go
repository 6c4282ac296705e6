// Package launch runs the system under test as the benchmarks measure it: the
// lambdalake binary built from this tree and started as a child process
// (its own RSS and CPU, a real TCP listener), never outliving the bench.
package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Build builds ./cmd/lambdalake into dir and returns the binary's path.
// BENCH_BINARY names a prebuilt one instead, to compare two builds on the
// same data and machine load.
func Build(dir string) (string, error) {
	if other := os.Getenv("BENCH_BINARY"); other != "" {
		return other, nil
	}
	bin := filepath.Join(dir, "lambdalake")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/lambdalake").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("launch: build lambdalake: %w: %s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("launch: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Proc is a started child process.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	done chan struct{}
}

// Config says how to start a child.
type Config struct {
	Name string   // for log lines
	Path string   // binary
	Args []string // arguments
	Env  []string // added to this process's environment
	// OnLine hears each stderr line (for "partition assigned" and the
	// like); lines with level=WARN or level=ERROR are also logged.
	OnLine func(line string)
	// Stdout, when set, hears each stdout line; otherwise stdout is dropped.
	Stdout func(line string)
}

// Start starts a child that is sent SIGTERM if this process dies.
func Start(cfg Config) (*Proc, error) {
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("launch: %s: %w", cfg.Name, err)
	}
	var stdout io.ReadCloser
	if cfg.Stdout != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, fmt.Errorf("launch: %s: %w", cfg.Name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch: start %s: %w", cfg.Name, err)
	}
	p := &Proc{Cmd: cmd, Name: cfg.Name, done: make(chan struct{})}
	pipes := make(chan struct{}, 2)
	go func() {
		defer func() { pipes <- struct{}{} }()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if cfg.OnLine != nil {
				cfg.OnLine(line)
			}
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || os.Getenv("BENCH_VERBOSE") != "" {
				log.Printf("%s: %s", cfg.Name, line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	if stdout != nil {
		go func() {
			defer func() { pipes <- struct{}{} }()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				cfg.Stdout(sc.Text())
			}
			io.Copy(io.Discard, stdout)
		}()
	} else {
		pipes <- struct{}{}
	}
	// The pipes close when the child exits; Wait must follow their reads.
	go func() {
		<-pipes
		<-pipes
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed once the child has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Stop sends SIGTERM and waits up to grace for the child to exit, then
// kills it.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Cmd.Process.Kill()
		<-p.done
	}
}

// WaitReady polls base+"/readyz" until it answers 200, for up to timeout.
func WaitReady(ctx context.Context, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("launch: " + base + " not ready in " + timeout.String() + ": " + last)
}

// ProfileDuring starts FetchProfile in the background and returns where its
// error arrives; with path empty nothing is profiled and nil arrives at once.
func ProfileDuring(ctx context.Context, addr string, d time.Duration, path string) <-chan error {
	done := make(chan error, 1)
	if path == "" {
		done <- nil
		return done
	}
	go func() { done <- FetchProfile(ctx, addr, d, path) }()
	return done
}

// FetchProfile writes the CPU profile of a process serving --pprof at addr
// over the next d to path.
func FetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds())))
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: status %d: %.200s", resp.StatusCode, b)
	}
	return os.WriteFile(path, b, 0o644)
}

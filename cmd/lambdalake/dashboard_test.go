package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// chromium returns Debian's headless browser, which `make test` installs.
func chromium(t *testing.T) string {
	t.Helper()
	testenv.Integration(t)
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on the PATH: `make test` installs it (apt-get install chromium)")
	return ""
}

func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,900"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// The dashboard, loaded in headless Chromium from `lambdalake dev`, draws
// batch bars, speed bars and the boundary; a screenshot is kept in the
// test's temp folder.
func TestDashboardShowsBothSourcesAndTheBoundary(t *testing.T) {
	browser := chromium(t)
	bin := testenv.Binary(t)
	httpAddr := freePort(t)
	cmd := exec.Command(bin, "dev", "--http", httpAddr, "--kafka", freePort(t), "--redis", freePort(t),
		"--lake-dir", t.TempDir()+"/lake", "--rate", "100", "--history", "20000")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		if t.Failed() {
			t.Logf("dev output:\n%s", logs.String())
		}
	}()

	// Wait until batch has published a boundary, so both sources exist.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if b := boundaryOf(httpAddr, "revenue"); b != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no boundary within 90 s of starting dev")
		}
		time.Sleep(500 * time.Millisecond)
	}

	url := "http://" + httpAddr + "/"
	dom := string(headless(t, browser, "--virtual-time-budget=10000", "--dump-dom", url))
	for _, want := range []string{`class="bar batch"`, `class="bar speed"`, `class="boundary"`, `<td class="ok">ok</td>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page has no %s", want)
		}
	}
	if strings.Contains(dom, "query failed") {
		t.Errorf("the page reports a failed query")
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	headless(t, browser, "--virtual-time-budget=10000", "--screenshot="+shot, url)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10000 {
		t.Errorf("screenshot %s is not a PNG of a page (%d bytes)", shot, len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}

func boundaryOf(addr, view string) string {
	resp, err := http.Get("http://" + addr + "/v1/views")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Views []struct {
			Name     string  `json:"name"`
			Boundary *string `json:"boundary"`
		} `json:"views"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return ""
	}
	for _, v := range body.Views {
		if v.Name == view && v.Boundary != nil {
			return *v.Boundary
		}
	}
	return ""
}

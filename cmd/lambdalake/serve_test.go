package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/testenv"
)

func TestPrintTable(t *testing.T) {
	body := []byte(`{"view":"revenue","from":"2026-11-27T09:00:00Z","to":"2026-11-27T09:02:00Z","step":"1m","boundary":"2026-11-27T09:01:00Z",
"sources":{"batch":["2026-11-27T09:00:00Z","2026-11-27T09:01:00Z"],"speed":["2026-11-27T09:01:00Z","2026-11-27T09:02:00Z"]},
"gaps":[["2026-11-27T09:01:00Z","2026-11-27T09:02:00Z"]],"approximate":["buyers"],
"rows":[{"t":"2026-11-27T09:00:00Z","tenant":"acme","orders":12,"revenue":10.5,"buyers":3},{"t":"2026-11-27T09:00:00Z","tenant":null,"orders":1,"revenue":null,"buyers":1}]}`)
	var out bytes.Buffer
	if err := printTable(&out, body); err != nil {
		t.Fatal(err)
	}
	want := "t                     tenant  orders  revenue  buyers\n" +
		"2026-11-27T09:00:00Z  acme    12      10.5     3\n" +
		"2026-11-27T09:00:00Z  null    1       null     1\n"
	got := out.String()
	if !strings.HasPrefix(got, want) {
		t.Errorf("table:\n%s\nwant prefix:\n%s", got, want)
	}
	for _, s := range []string{"2 rows  view=revenue", "boundary=2026-11-27T09:01:00Z", "GAPS", "approximate (HyperLogLog): buyers"} {
		if !strings.Contains(got, s) {
			t.Errorf("output lacks %q:\n%s", s, got)
		}
	}
	if err := printTable(&out, []byte("not json")); err == nil {
		t.Error("a bad answer must be an error")
	}
}

// `lambdalake serve` answers queries from `lambdalake query`, refuses bad
// ones with the parameter named, and stops cleanly on SIGTERM.
func TestServeAndQueryCommands(t *testing.T) {
	testenv.Integration(t)
	testenv.KafkaBrokers(t)
	testenv.RedisAddr(t)
	bin := testenv.Binary(t)
	addr := freePort(t)
	view := strings.ReplaceAll(testenv.Name("cli"), "-", "_")
	yml := strings.NewReplacer(
		"url: s3://lambdalake/lake", "url: file://"+t.TempDir(),
		"addr: 127.0.0.1:8080", "addr: "+addr,
		"  revenue:\n    schema: orders", "  "+view+":\n    schema: orders",
	).Replace(string(lambdalake.ExampleConfig))
	cfg := testenv.WriteConfig(t, yml)
	srv := exec.Command(bin, "serve", "--config", cfg)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	run := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"query"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	const tok = "change-me-read-only-token"
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-30 * time.Minute).Format(time.RFC3339)
	// The config's http.addr is the default server.
	out, errOut, err := run(view, "--config", cfg, "--token", tok, "--from", from, "--to", to.Format(time.RFC3339), "--step", "5m")
	if err != nil {
		t.Fatalf("query: %v\n%s", err, errOut)
	}
	// No speed worker ever ran for the view: [from, to) is computed from
	// the (empty) raw lake, said so in sources, not silently zero.
	if !strings.Contains(out, "0 rows  view="+view) || !strings.Contains(out, `"cold":[[`) {
		t.Errorf("query output:\n%s", out)
	}
	out, errOut, err = run(view, "--server", "http://"+addr, "--token", tok, "--from", from, "--to", to.Format(time.RFC3339), "--format", "csv", "--metrics", "orders,buyers")
	if err != nil || out != "t,orders,buyers\n" {
		t.Errorf("csv: %v %q %s", err, out, errOut)
	}
	_, errOut, err = run(view, "--server", "http://"+addr, "--token", tok, "--from", from, "--step", "90s")
	if err == nil || !strings.Contains(errOut, "400 Bad Request (parameter step)") {
		t.Errorf("bad step: %v %s", err, errOut)
	}
	_, errOut, err = run(view, "--server", "http://"+addr, "--token", "wrong-token-0123456789", "--from", from)
	if err == nil || !strings.Contains(errOut, "401") {
		t.Errorf("bad token: %v %s", err, errOut)
	}
	if _, _, err := run("--server", "http://"+addr); err == nil {
		t.Error("query without a view must fail")
	}

	srv.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s of SIGTERM")
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// freePort never returns the same address twice in the test process
// (testenv.FreeAddr): dev takes three at once.
func freePort(t *testing.T) string { return testenv.FreeAddr(t) }

// The `make run` smoke test: dev starts on embedded servers, answers
// /healthz and /readyz, and stops cleanly on SIGINT.
func TestDevStartsServesAndStops(t *testing.T) {
	bin := testenv.Binary(t)
	httpAddr := freePort(t)
	cmd := exec.Command(bin, "dev", "--http", httpAddr, "--kafka", freePort(t), "--redis", freePort(t),
		"--lake-dir", t.TempDir()+"/lake", "--rate", "50", "--history", "2000")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The banner comes once the HTTP server listens: wait for it before
	// anything else (a /healthz can answer a few ms before it prints, and
	// a SIGINT then would stop dev before its banner).
	printed := make(chan struct{})
	banner := make(chan string, 1)
	go func() {
		var out strings.Builder
		seen := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !seen && strings.Contains(sc.Text(), "http://"+httpAddr) {
				close(printed)
				seen = true
			}
		}
		banner <- out.String()
	}()
	select {
	case <-printed:
	case out := <-banner:
		t.Fatalf("dev ended its output without a banner naming http://%s:\n%s", httpAddr, out)
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner naming http://%s within 60 s", httpAddr)
	}

	deadline := time.Now().Add(30 * time.Second)
	var health string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				health = string(b)
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(health, `"ok"`) {
		t.Fatalf("/healthz never answered ok (last body %q)", health)
	}
	resp, err := http.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"kafka":"ok"`) || !strings.Contains(string(body), `"redis":"ok"`) {
		t.Errorf("/readyz = %d %s", resp.StatusCode, body)
	}

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("dev exited with %v after SIGINT", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dev did not stop within 20 s of SIGINT")
	}
	if out := <-banner; !strings.Contains(out, "http://"+httpAddr) {
		t.Errorf("banner does not print the HTTP endpoint:\n%s", out)
	}
}

func TestCheckConfigNamesKeyAndLine(t *testing.T) {
	bin := testenv.Binary(t)
	broken := strings.Replace(string(lambdalake.ExampleConfig), "granularity: 5m", "granularity: 7m", 1)
	path := testenv.WriteConfig(t, broken)
	out, err := exec.Command(bin, "check-config", "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("check-config accepted a broken file:\n%s", out)
	}
	line := 0
	for i, l := range strings.Split(broken, "\n") {
		if strings.Contains(l, "granularity: 7m") {
			line = i + 1
		}
	}
	want := fmt.Sprintf("views.traffic.granularity: 7m0s does not divide an hour evenly (line %d)", line)
	if !strings.Contains(string(out), want) {
		t.Errorf("output does not contain %q:\n%s", want, out)
	}

	good := testenv.WriteConfig(t, string(lambdalake.ExampleConfig))
	out, err = exec.Command(bin, "check-config", "--config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "revenue") || !strings.Contains(string(out), "is valid") {
		t.Errorf("check-config on the example: %v\n%s", err, out)
	}
}

// gen writes to the real broker; reading the topic back and classifying each
// record with the decoder gives the same counts by kind that gen reported.
func TestGenToKafkaCountsByKind(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	bin := testenv.Binary(t)
	topic := testenv.Name("gen")
	cfgText := strings.Replace(string(lambdalake.ExampleConfig), "topic: orders", "topic: "+topic, 1)
	path := testenv.WriteConfig(t, cfgText)
	const count = 60000
	cmd := exec.Command(bin, "gen", "--config", path, "--schema", "orders", "--count", strconv.Itoa(count),
		"--span", "6h", "--duplicates", "0.03", "--malformed", "0.02", "--out-of-order", "0.05", "--seed", "9")
	cmd.Env = append(os.Environ(), "LAMBDALAKE_KAFKA_BROKERS="+strings.Join(brokers, ","))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	reported := parseCounts(t, string(out))
	if reported["total"] != count || reported["valid"]+reported["duplicate"]+reported["malformed"] != count {
		t.Fatalf("gen reported %v", reported)
	}

	cfg, err := config.Parse([]byte(cfgText), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Schema("orders")
	got := consumeAndClassify(t, brokers, topic, s)
	for _, k := range []string{"total", "valid", "duplicate", "malformed"} {
		if got[k] != reported[k] {
			t.Errorf("%s: consumed %d, gen reported %d", k, got[k], reported[k])
		}
	}
	if reported["malformed"] == 0 || reported["duplicate"] == 0 || reported["out_of_order"] == 0 {
		t.Errorf("a kind is missing from the traffic: %v", reported)
	}
}

var countRE = regexp.MustCompile(`(total|valid|duplicate|malformed|out_of_order)=(\d+)`)

func parseCounts(t *testing.T, out string) map[string]int {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	m := map[string]int{}
	for _, sm := range countRE.FindAllStringSubmatch(last, -1) {
		n, _ := strconv.Atoi(sm[2])
		m[sm[1]] = n
	}
	if len(m) != 5 {
		t.Fatalf("last line of gen does not carry the counts: %q", last)
	}
	return m
}

func consumeAndClassify(t *testing.T, brokers []string, topic string, s *schemas.Schema) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parts, err := stream.PartitionCount(ctx, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	d := schemas.NewDecoder(s)
	ids := map[string]bool{}
	got := map[string]int{}
	var row schemas.Row
	for p := range parts {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxBytes: 4 << 20})
		for n := int64(0); n < end; n++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d at %d of %d: %v", p, n, end, err)
			}
			got["total"]++
			if err := d.Decode(m.Value, &row); err != nil {
				got["malformed"]++
				continue
			}
			id := row.Values[s.FieldIndex(s.ID)].Str
			if ids[id] {
				got["duplicate"]++
			} else {
				got["valid"]++
				ids[id] = true
			}
		}
		r.Close()
	}
	return got
}

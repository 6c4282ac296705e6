package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/testenv"
)

// TestHostileRequests runs serving/testdata/hostile.sh (issue 17: malformed
// parameters, bad tokens, tenant-bound tokens and JWTs, rate limits, long
// and invalid Events API lines, slow bodies, idle connections) against
// `lambdalake all` on the local stack with tokens on: every case must get
// a 4xx or its documented success, none a 5xx or a hang.
func TestHostileRequests(t *testing.T) {
	testenv.Integration(t)
	brokers := testenv.KafkaBrokers(t)
	testenv.RedisAddr(t)
	for _, tool := range []string{"bash", "curl", "timeout", "gzip", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("hostile.sh needs %s: %v", tool, err)
		}
	}
	bin := testenv.Binary(t)
	addr := freePort(t)
	name := strings.ReplaceAll(testenv.Name("hostile"), "-", "_")
	topic := testenv.Name("hostile")
	t.Cleanup(func() {
		// Deleted with a transport of its own: kafka-go's DefaultTransport
		// (behind stream.DeleteTopic) caches metadata for seconds, and a
		// later test of this process creating a topic would then be told
		// by stream.PartitionCount that its topic is unknown.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tr := &kafka.Transport{}
		defer tr.CloseIdleConnections()
		client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
		if resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil || resp.Errors[topic] != nil {
			t.Logf("delete topic %s: %v %v", topic, err, resp)
		}
	})
	const (
		readTok, writeTok, adminTok = "hostile-read-0123456789", "hostile-write-0123456789", "hostile-admin-0123456789"
		tenantTok, limitedTok       = "hostile-tenant-0123456789", "hostile-limited-0123456789"
		secret                      = "hostile-jwt-secret-0123456789abcdef"
	)
	cfg := testenv.WriteConfig(t, fmt.Sprintf(`kafka:
  brokers: [%s]
  partitions: 2
lake:
  url: file://%s
http:
  addr: %s
  max_rows: 20000
  read_header_timeout: 2s
  body_timeout: 2s
  idle_timeout: 3s
  tokens:
    - {name: read, token: %s, scopes: [read:views]}
    - {name: write, token: %s, scopes: [write:events]}
    - {name: admin, token: %s, scopes: [admin]}
    - {name: acme, token: %s, scopes: [read:views], filters: {tenant: t07}}
    - {name: limited, token: %s, scopes: [read:views], rate: 1, burst: 2}
  jwt:
    secret: %s
    issuer: hostile-test
speed:
  group: %s-speed
  metrics_addr: ""
compact:
  group: %s-compact
jobs:
  namespace: %s
schemas:
  orders:
    topic: %s
    time: ts
    id: order_id
    fields:
      order_id: string
      ts: timestamp
      tenant: string
      country: string
      user_id: string
      amount: float64
      coupon: {type: string, optional: true}
views:
  %s:
    schema: orders
    granularity: 1m
    dimensions: [tenant, country]
    metrics:
      orders: {agg: count}
      revenue: {agg: sum, field: amount}
      buyers: {agg: uniq, field: user_id}
`, strings.Join(brokers, ", "), t.TempDir(), addr, readTok, writeTok, adminTok, tenantTok, limitedTok, secret, name, name, name, topic, name))
	srv := exec.Command(bin, "all", "--config", cfg)
	logs := &testenv.SyncBuffer{}
	srv.Stdout, srv.Stderr = logs, logs
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("lambdalake all:\n%s", tail(logs.String(), 4000))
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdalake all not serving: %v\n%s", err, tail(logs.String(), 4000))
		}
	}
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "acme-dashboard", "iss": "hostile-test",
		"scopes": []string{"read:views"}, "filters": map[string]string{"tenant": "t07"},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	script, _ := filepath.Abs("../../serving/testdata/hostile.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "BASE=http://"+addr, "VIEW="+name, "SCHEMA=orders",
		"READ_TOKEN="+readTok, "WRITE_TOKEN="+writeTok, "ADMIN_TOKEN="+adminTok, "TENANT_TOKEN="+tenantTok, "TENANT=t07",
		"LIMITED_TOKEN="+limitedTok, "JWT="+tok, "BODY_TIMEOUT=2", "HEADER_TIMEOUT=2", "IDLE_TIMEOUT=3")
	out, err := cmd.CombinedOutput()
	t.Logf("hostile.sh:\n%s", out)
	if err != nil {
		t.Errorf("hostile.sh: %v", err)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the server panicked:\n%s", tail(logs.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

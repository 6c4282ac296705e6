// Package testenv gives integration tests the endpoints of the local stack
// (DESIGN §6) and fresh, isolated resources on it: a lake prefix, a topic,
// a Redis key prefix. Integration tests skip only under `go test -short`;
// a service that does not answer fails the test and says to run `make up`.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/lake"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Integration skips t under -short and otherwise does nothing.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the local stack (skipped under -short)")
	}
}

func reach(t testing.TB, what, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (%v): start the local stack with `make up`", what, addr, err)
	}
	c.Close()
}

// KafkaBrokers returns the local stack's brokers, after checking one answers.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	Integration(t)
	brokers := strings.Split(env("LAMBDALAKE_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	reach(t, "Kafka", brokers[0])
	return brokers
}

// RedisAddr returns the local stack's Redis address, after checking it answers.
func RedisAddr(t testing.TB) string {
	t.Helper()
	Integration(t)
	addr := env("LAMBDALAKE_REDIS_ADDR", "127.0.0.1:6379")
	reach(t, "Redis", addr)
	return addr
}

// S3Endpoint returns the local stack's S3 endpoint (LocalStack).
func S3Endpoint(t testing.TB) string {
	t.Helper()
	Integration(t)
	ep := env("LAMBDALAKE_S3_ENDPOINT", "http://127.0.0.1:4566")
	reach(t, "LocalStack S3", strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://"))
	return ep
}

// S3Config is how tests reach LocalStack.
func S3Config(t testing.TB) lake.S3Config {
	return lake.S3Config{Endpoint: S3Endpoint(t), Region: "us-east-1", PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test", MaxAttempts: 3, PartSize: 5 << 20}
}

// Bucket is the bucket `make up` creates.
const Bucket = "lambdalake"

// Name returns a unique name for a test resource: prefix-<random>.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// S3Lake returns an S3 store under a fresh prefix of the test bucket, and
// its URL; everything under the prefix is deleted when the test ends.
func S3Lake(t testing.TB) (*lake.S3Store, string) {
	t.Helper()
	cfg := S3Config(t)
	prefix := Name("test")
	ctx := context.Background()
	s, err := lake.NewS3Store(ctx, Bucket, prefix, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("bucket %s: %v (is LocalStack up? `make up`)", Bucket, err)
	}
	t.Cleanup(func() {
		objs, err := s.List(context.Background(), "")
		if err != nil {
			return // LocalStack may be stopped by a fault test; leave it
		}
		for _, o := range objs {
			s.Delete(context.Background(), o.Key)
		}
	})
	return s, "s3://" + Bucket + "/" + prefix
}

// Topic creates a fresh topic with the given partitions.
func Topic(t testing.TB, brokers []string, partitions int) string {
	t.Helper()
	topic := Name("test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.EnsureTopic(ctx, brokers, topic, partitions); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stream.DeleteTopic(ctx, brokers, topic); err != nil {
			t.Logf("delete topic: %v", err)
		}
	})
	return topic
}

package stream_test

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/stream"
)

// Keyed messages land where the Java client's default partitioner puts
// them (murmur2; vectors of kafka-python's Java-compatible partitioner
// test), so our producers and others agree on a key's partition; unkeyed
// ones go round robin, as before keys.
func TestKeyBalancer(t *testing.T) {
	parts := make([]int, 1000)
	for i := range parts {
		parts[i] = i
	}
	var b stream.KeyBalancer
	for _, tt := range []struct {
		key  string
		want int
	}{{"", 681}, {"a", 524}, {"ab", 434}, {"abc", 107}, {"123456789", 566}} {
		for range 3 { // the same key, the same partition, every time
			if got := b.Balance(kafka.Message{Key: []byte(tt.key)}, parts...); got != tt.want {
				t.Errorf("key %q: partition %d, want %d", tt.key, got, tt.want)
			}
		}
	}
	four := []int{0, 1, 2, 3}
	var got []int
	for range 8 {
		got = append(got, b.Balance(kafka.Message{Value: []byte("v")}, four...))
	}
	for i := 1; i < len(got); i++ {
		if got[i] != (got[i-1]+1)%4 {
			t.Fatalf("unkeyed messages went to %v, want round robin", got)
		}
	}
	if w := stream.NewWriter([]string{"127.0.0.1:1"}, "t"); w.Balancer == nil {
		t.Error("NewWriter has no balancer")
	} else if _, ok := w.Balancer.(*stream.KeyBalancer); !ok {
		t.Errorf("NewWriter balances with %T, want *stream.KeyBalancer", w.Balancer)
	}
}

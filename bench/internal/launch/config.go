package launch

import (
	"fmt"
	"strings"

	"github.com/lambdalake/lambdalake"
)

// Names are what a bench run makes its own in the example config, so that
// it collides with nothing else on the shared stack.
type Names struct {
	Suffix    string // appended to topics, views, groups and the jobs namespace
	LakeURL   string // file:///dir or s3://bucket/prefix
	HTTPAddr  string
	Recompute string // the recompute job's cron (empty: the example's)
	CacheTTL  string // http.cache_ttl (empty: the default)
	// SpeedMetrics serves the speed worker's /metrics there (empty: off).
	SpeedMetrics string
}

// Run is the example config made unique: its YAML and the names it got.
type Run struct {
	YAML string
	// Topic and View map the example's schema and view names to this run's.
	Topic, View map[string]string
}

// ExampleConfig rewrites lambdalake.yaml (the example config) for a bench run: the
// orders and pageviews topics, the revenue and traffic views, the speed and
// compact consumer groups and the jobs namespace get the suffix; the lake,
// the HTTP address and the recompute schedule are the run's.
func ExampleConfig(n Names) (Run, error) {
	r := Run{Topic: map[string]string{"orders": "orders-" + n.Suffix, "pageviews": "pageviews-" + n.Suffix},
		View: map[string]string{"revenue": "revenue_" + n.Suffix, "traffic": "traffic_" + n.Suffix}}
	y := string(lambdalake.ExampleConfig)
	speed := "speed:\n  group: bench-speed-" + n.Suffix + "\n"
	if n.SpeedMetrics != "" {
		speed += "  metrics_addr: " + n.SpeedMetrics + "\n"
	}
	http := "http:\n"
	if n.CacheTTL != "" {
		http += "  cache_ttl: " + n.CacheTTL + "\n"
	}
	jobs := "jobs:\n  namespace: bench-" + n.Suffix + "\n"
	if n.Recompute != "" {
		jobs += "  recompute: \"" + n.Recompute + "\"\n"
	}
	repl := []struct{ old, new string }{
		{"url: s3://lambdalake/lake", "url: " + n.LakeURL},
		{"addr: 127.0.0.1:8080", "addr: " + n.HTTPAddr},
		{"topic: orders\n", "topic: " + r.Topic["orders"] + "\n"},
		{"topic: pageviews\n", "topic: " + r.Topic["pageviews"] + "\n"},
		{"  revenue:\n    schema: orders", "  " + r.View["revenue"] + ":\n    schema: orders"},
		{"  traffic:\n    schema: pageviews", "  " + r.View["traffic"] + ":\n    schema: pageviews"},
		{"speed:\n", speed},
		{"http:\n", http},
		{"compact:\n", "compact:\n  group: bench-compact-" + n.Suffix + "\n"},
	}
	for _, x := range repl {
		if !strings.Contains(y, x.old) {
			return Run{}, fmt.Errorf("launch: the example config has no %q", x.old)
		}
		y = strings.Replace(y, x.old, x.new, 1)
	}
	// The example's recompute line goes when the run sets its own.
	if n.Recompute != "" {
		i := strings.Index(y, "jobs:\n")
		j := strings.Index(y[i:], "  recompute: ")
		if j < 0 {
			return Run{}, fmt.Errorf("launch: the example config has no jobs.recompute")
		}
		k := strings.IndexByte(y[i+j:], '\n')
		y = y[:i+j] + y[i+j+k+1:]
	}
	if !strings.Contains(y, "jobs:\n") {
		return Run{}, fmt.Errorf("launch: the example config has no jobs section")
	}
	y = strings.Replace(y, "jobs:\n", jobs, 1)
	r.YAML = y
	return r, nil
}

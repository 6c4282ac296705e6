package launch

import (
	"strings"
	"testing"

	"github.com/lambdalake/lambdalake/internal/config"
)

// TestExampleConfig checks that a run's config parses and that everything a
// run creates on the shared stack carries its suffix.
func TestExampleConfig(t *testing.T) {
	tests := []struct {
		name  string
		names Names
		want  []string // substrings of the YAML
	}{
		{"plain", Names{Suffix: "s1", LakeURL: "file:///tmp/lake", HTTPAddr: "127.0.0.1:1"},
			[]string{"group: bench-speed-s1", "group: bench-compact-s1", "namespace: bench-s1", "url: file:///tmp/lake", "addr: 127.0.0.1:1"}},
		{"everything", Names{Suffix: "s2", LakeURL: "s3://lambdalake/p", HTTPAddr: "127.0.0.1:2", Recompute: "*/10 * * * * *", CacheTTL: "2s", SpeedMetrics: "127.0.0.1:3"},
			[]string{`recompute: "*/10 * * * * *"`, "cache_ttl: 2s", "metrics_addr: 127.0.0.1:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ExampleConfig(tt.names)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.YAML, w) {
					t.Errorf("config lacks %q", w)
				}
			}
			if tt.names.Recompute != "" && strings.Count(r.YAML, "recompute:") != 1 {
				t.Errorf("config has %d recompute lines, want 1", strings.Count(r.YAML, "recompute:"))
			}
			cfg, err := config.Parse([]byte(r.YAML), nil)
			if err != nil {
				t.Fatalf("config does not parse: %v", err)
			}
			for _, s := range cfg.SchemaList {
				if !strings.HasSuffix(s.Topic, "-"+tt.names.Suffix) {
					t.Errorf("topic %s lacks the suffix", s.Topic)
				}
			}
			for _, v := range cfg.ViewList {
				if !strings.HasSuffix(v.Name, "_"+tt.names.Suffix) {
					t.Errorf("view %s lacks the suffix", v.Name)
				}
			}
			if len(cfg.ViewList) != len(r.View) || len(cfg.SchemaList) != len(r.Topic) {
				t.Errorf("%d views and %d schemas, the run names %d and %d", len(cfg.ViewList), len(cfg.SchemaList), len(r.View), len(r.Topic))
			}
		})
	}
}

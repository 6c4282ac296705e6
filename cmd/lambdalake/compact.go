package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/lake"
)

func init() {
	commands["compact"] = command{"compact Kafka into the raw Parquet lake (batch layer)", runCompact}
}

func runCompact(ctx context.Context, args []string) error {
	fs, path := flagSet("compact")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics and /debug/pprof/ on this address (empty: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	store, err := openLake(ctx, cfg)
	if err != nil {
		return err
	}
	// The budget counts buffered records; give the Go heap a soft limit a
	// little above it so garbage does not pile up beyond it (unless the
	// operator set GOMEMLIMIT).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.Compact.Budget) + 64<<20)
	}
	c, err := compact.New(compactorConfig(cfg, store))
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.Handler())
		// Profiles of a running compactor, on the same operator-only address.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		srv := &http.Server{Addr: *metricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("compact: metrics server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
	}
	g.Go(func() error {
		if err := c.Run(gctx); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		return errStopped
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return nil
}

// errStopped ends the errgroup when the compactor returns, so the metrics
// server closes with it.
var errStopped = errors.New("compactor stopped")

// compactorConfig maps the config file onto the compactor's settings.
func compactorConfig(cfg *config.Config, store lake.Store) compact.Config {
	lateness := map[string]time.Duration{}
	for _, v := range cfg.ViewList {
		lateness[v.Schema.Name] = max(lateness[v.Schema.Name], v.Lateness)
	}
	return compact.Config{
		Brokers:        cfg.Kafka.Brokers,
		Group:          cfg.Compact.Group,
		Store:          store,
		Schemas:        cfg.SchemaList,
		Lateness:       lateness,
		Budget:         int64(cfg.Compact.Budget),
		MaxFileRows:    cfg.Compact.MaxFileRows,
		MaxFileBytes:   int64(cfg.Compact.MaxFileBytes),
		MaxFileAge:     cfg.Compact.MaxFileAge.D(),
		SessionTimeout: cfg.Compact.SessionTimeout.D(),
		Logger:         slog.Default(),
	}
}

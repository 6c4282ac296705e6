package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/speed"
)

func init() {
	commands["speed"] = command{"speed layer: Kafka → hot windows in Redis (`speed rebuild --view V` replays a view)", runSpeed}
}

func runSpeed(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "rebuild" {
		return runSpeedRebuild(ctx, args[1:])
	}
	fs, path := flagSet("speed")
	schemaName := fs.String("schema", "", "consume only this schema's topic (default: every schema with a view)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	var views []*schemas.View
	for _, v := range cfg.ViewList {
		if *schemaName == "" || v.Schema.Name == *schemaName {
			views = append(views, v)
		}
	}
	if len(views) == 0 {
		if *schemaName != "" {
			return fmt.Errorf("%w: --schema: no view over schema %q in %s", errUsage, *schemaName, *path)
		}
		return fmt.Errorf("no views in %s", *path)
	}
	return runSpeedWorker(ctx, cfg, views)
}

// runSpeed rebuild: Reset the view, then go on live as a normal worker
// (over every view on the view's schema) unless --exit is given.
func runSpeedRebuild(ctx context.Context, args []string) error {
	fs, path := flagSet("speed rebuild")
	viewName := fs.String("view", "", "view to rebuild (required)")
	exit := fs.Bool("exit", false, "reset the view's hot state and offsets, then exit instead of consuming")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *viewName == "" {
		return fmt.Errorf("%w: --view is required", errUsage)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	v := cfg.View(*viewName)
	if v == nil {
		return fmt.Errorf("%w: --view: no view %q in %s", errUsage, *viewName, *path)
	}
	rdb := cfg.Redis.Client()
	offs, err := speed.Reset(ctx, speed.ResetConfig{Brokers: cfg.Kafka.Brokers, Redis: rdb, View: v})
	rdb.Close()
	if err != nil {
		return err
	}
	slog.Info("speed: view reset; replaying from now - hot_retention", "view", v.Name, "hot_retention", v.HotRetention, "offsets", offs)
	if *exit {
		return nil
	}
	return runSpeedWorker(ctx, cfg, cfg.ViewsOf(v.Schema.Name))
}

// speedConfig is the speed worker's configuration for views of cfg.
func speedConfig(cfg *config.Config, rdb redis.UniversalClient, views []*schemas.View) speed.Config {
	return speed.Config{
		Brokers: cfg.Kafka.Brokers, Group: cfg.Speed.Group, Views: views, Redis: rdb,
		FlushInterval: cfg.Speed.FlushInterval.D(), MaxPending: cfg.Speed.MaxPending,
		SessionTimeout: cfg.Speed.SessionTimeout.D(), Registerer: prometheus.DefaultRegisterer,
		DedupMaxBytes: int64(cfg.Speed.DedupMaxBytes),
	}
}

func runSpeedWorker(ctx context.Context, cfg *config.Config, views []*schemas.View) error {
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	w, err := speed.New(speedConfig(cfg, rdb, views))
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if addr := cfg.Speed.MetricsAddr; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("speed: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("speed: metrics server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	names := make([]string, len(views))
	for i, v := range views {
		names[i] = v.Name
	}
	slog.Info("speed: starting", "group", cfg.Speed.Group, "views", names, "metrics", cfg.Speed.MetricsAddr)
	g.Go(func() error { return w.Run(gctx) })
	err = g.Wait()
	slog.Info("speed: stopped")
	return err
}

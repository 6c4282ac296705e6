package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/compact"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/serving/dashboard"
	"github.com/lambdalake/lambdalake/speed"
)

func init() {
	commands["all"] = command{"every role in one process (speed, compact, jobs, serve) against the config's services", runAll}
}

func runAll(ctx context.Context, args []string) error {
	fs, path := flagSet("all")
	runner := fs.String("runner", "", "jobs runner name (default: host-pid)")
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof/ on this operator-only address (empty: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: lambdalake all [--config F] [--runner NAME] [--pprof HOST:PORT]", errUsage)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	store, err := openLake(ctx, cfg)
	if err != nil {
		return err
	}
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	for _, s := range cfg.SchemaList {
		if err := stream.EnsureTopic(ctx, cfg.Kafka.Brokers, s.Topic, cfg.Kafka.Partitions); err != nil {
			return err
		}
	}
	return runRoles(ctx, cfg, store, rdb, rolesOptions{RunnerID: *runner, PprofAddr: *pprofAddr, OnServing: func(addr string) {
		slog.Info("all: serving", "addr", "http://"+addr)
	}})
}

// rolesOptions are what differs between `all` and `dev`.
type rolesOptions struct {
	RunnerID     string
	AuthDisabled bool
	PprofAddr    string            // "": no profiles
	OnServing    func(addr string) // called once the HTTP server listens
}

// runRoles runs the speed worker, the compactor, the jobs runner and the
// HTTP server (API and dashboard) over one config until ctx ends, then
// shuts each down gracefully (the speed worker and the compactor flush).
func runRoles(ctx context.Context, cfg *config.Config, store lake.Store, rdb redis.UniversalClient, opt rolesOptions) error {
	setServingGC(cfg)
	w, err := speed.New(speedConfig(cfg, rdb, cfg.ViewList))
	if err != nil {
		return err
	}
	c, err := compact.New(compactorConfig(cfg, store))
	if err != nil {
		return err
	}
	list, err := jobs.BatchJobs(jobs.BatchConfig{Store: store, Redis: rdb, Group: cfg.Compact.Group,
		Schemas: cfg.SchemaList, Views: cfg.ViewList,
		Recompute: cfg.Jobs.Recompute, Merge: cfg.Jobs.Merge, Retention: cfg.Jobs.Retention})
	if err != nil {
		return err
	}
	runner, err := jobs.New(jobs.Config{Redis: rdb, Namespace: cfg.Jobs.Namespace, RunnerID: opt.RunnerID,
		Lease: cfg.Jobs.Lease.D(), Jobs: list})
	if err != nil {
		return err
	}
	srv, api, err := newServing(cfg, store, rdb, servingOptions{AuthDisabled: opt.AuthDisabled})
	if err != nil {
		return err
	}
	defer api.Close()
	dashboard.Register(srv.Handle)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	g.Go(func() error { return c.Run(gctx) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx) })
	if opt.PprofAddr != "" {
		g.Go(func() error { return servePprof(gctx, opt.PprofAddr) })
	}
	if opt.OnServing != nil {
		g.Go(func() error {
			// Run binds the listener; tell the caller once it has.
			for srv.Addr() == nil {
				select {
				case <-gctx.Done():
					return nil
				case <-time.After(20 * time.Millisecond):
				}
			}
			opt.OnServing(srv.Addr().String())
			return nil
		})
	}
	return g.Wait()
}

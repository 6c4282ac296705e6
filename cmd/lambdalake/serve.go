package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/recompute"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/jobs"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
	"github.com/lambdalake/lambdalake/serving"
	"github.com/lambdalake/lambdalake/speed"
)

func init() {
	commands["serve"] = command{"the HTTP API: queries merging batch and speed at B, the Events API", runServe}
}

func runServe(ctx context.Context, args []string) error {
	fs, path := flagSet("serve")
	addr := fs.String("addr", "", "HTTP address (default: http.addr of the config)")
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof/ on this operator-only address (empty: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: lambdalake serve [--config F] [--addr HOST:PORT] [--pprof HOST:PORT]", errUsage)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.HTTP.Addr = *addr
	}
	setServingGC(cfg)
	store, err := openLake(ctx, cfg)
	if err != nil {
		return err
	}
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	srv, api, err := newServing(cfg, store, rdb, servingOptions{})
	if err != nil {
		return err
	}
	defer api.Close()
	if *pprofAddr == "" {
		return srv.Run(ctx) // graceful: in-flight requests finish on SIGINT/SIGTERM
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return servePprof(gctx, *pprofAddr) })
	g.Go(func() error {
		err := srv.Run(gctx)
		if err == nil {
			err = errStopped // stop the profile server too
		}
		return err
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return nil
}

// servePprof serves Go's profiles of this process on addr until ctx ends:
// an address apart from the API, as compact's --metrics, because profiles
// are for operators, not for API tokens.
func servePprof(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: pprof server: %w", err)
	}
	return nil
}

// servingOptions are what differs between `serve`, `all` and `dev`.
type servingOptions struct {
	AuthDisabled bool // dev only
	Registerer   prometheus.Registerer
	Gatherer     prometheus.Gatherer
}

// newServing wires the serving layer of cfg over a lake and Redis: the
// batch view reader (cached hours), the speed reader, the cold fallback
// and the Events API producer.
// setServingGC sets the collector's GOGC to http.gc_percent for a process
// that serves queries, unless the environment sets GOGC (the operator's
// word wins).
func setServingGC(cfg *config.Config) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.HTTP.GCPercent)
	}
}

func newServing(cfg *config.Config, store lake.Store, rdb redis.UniversalClient, opt servingOptions) (*serving.Server, *serving.API, error) {
	viewReader, err := views.NewReader(views.ReaderConfig{Store: store})
	if err != nil {
		return nil, nil, err
	}
	readCache := int64(cfg.Speed.ReadCache)
	if readCache == 0 {
		readCache = -1 // configured off
	}
	reg := opt.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	jwtCfg, err := serving.JWTFromConfig(cfg.HTTP.JWT)
	if err != nil {
		return nil, nil, err
	}
	api, err := serving.NewAPI(serving.APIConfig{
		Views: cfg.ViewList, Schemas: cfg.SchemaList, Redis: rdb,
		Speed: speed.NewReader(speed.ReaderConfig{Redis: rdb, CacheBytes: readCache, Registerer: reg}),
		Batch: viewReader,
		Cold: func(ctx context.Context, v *schemas.View, hour time.Time) ([]views.Row, error) {
			return recompute.ComputeHourRows(ctx, store, v, hour)
		},
		ColdMaxHours: cfg.HTTP.ColdMaxHours,
		Producer: func(topic string) serving.MessageWriter {
			return stream.NewWriter(cfg.Kafka.Brokers, topic)
		},
		DeadLetters: raw.NewDeadLetterSummary(store),
		Tokens:      cfg.HTTP.Tokens, JWT: jwtCfg, AuthDisabled: opt.AuthDisabled,
		MaxRange: cfg.HTTP.MaxRange.D(), MaxRows: cfg.HTTP.MaxRows, Timeout: cfg.HTTP.Timeout.D(),
		MaxBody: int64(cfg.HTTP.MaxBody), BodyTimeout: cfg.HTTP.BodyTimeout.D(),
		MaxQueries: cfg.HTTP.MaxQueries, MaxTokenQueries: cfg.HTTP.MaxTokenQueries, MaxCold: cfg.HTTP.MaxCold,
		CacheTTL: cfg.HTTP.CacheTTL.D(), CacheBytes: int64(cfg.HTTP.CacheBytes), RollupCacheBytes: int64(cfg.HTTP.RollupCacheBytes),
		Jobs:       jobRuns{rdb: rdb, namespace: cfg.Jobs.Namespace},
		Registerer: opt.Registerer,
	})
	if err != nil {
		return nil, nil, err
	}
	srv := serving.New(serving.Config{Addr: cfg.HTTP.Addr, Registerer: opt.Registerer, Gatherer: opt.Gatherer,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.D(), BodyTimeout: cfg.HTTP.BodyTimeout.D(),
		WriteTimeout: cfg.HTTP.WriteTimeout.D(), IdleTimeout: cfg.HTTP.IdleTimeout.D(),
		Checks: map[string]serving.Check{
			"kafka": func(ctx context.Context) error { return stream.Ping(ctx, cfg.Kafka.Brokers) },
			"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
			"lake":  func(ctx context.Context) error { _, err := store.List(ctx, "_checkpoints/"); return err },
		}})
	api.Register(srv)
	return srv, api, nil
}

// jobRuns is GET /v1/jobs' window on the jobs runners' run history.
type jobRuns struct {
	rdb       redis.UniversalClient
	namespace string
}

func (j jobRuns) Latest(ctx context.Context, n int) ([]json.RawMessage, error) {
	recs, err := jobs.History(ctx, j.rdb, j.namespace, n)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		if out[i], err = json.Marshal(r); err != nil {
			return nil, fmt.Errorf("jobs history: %w", err)
		}
	}
	return out, nil
}

func (jobRuns) Capacity() int { return jobs.DefaultHistoryCap }

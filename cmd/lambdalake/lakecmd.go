package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/lake"
)

func openLake(ctx context.Context, cfg *config.Config) (lake.Store, error) {
	return lake.Open(ctx, cfg.Lake.StoreConfig())
}

func init() {
	commands["lake"] = command{"inspect the lake: lake ls [prefix]", runLake}
}

func runLake(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "ls" {
		return fmt.Errorf("%w: lambdalake lake ls [--config F] [prefix]", errUsage)
	}
	fs, path := flagSet("lake ls")
	if err := parseFlags(fs, args[1:]); err != nil {
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
	objs, err := store.List(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	var total int64
	for _, o := range objs {
		fmt.Fprintf(w, "%d\t  %s\t  %s\n", o.Size, o.Modified.UTC().Format(time.RFC3339), o.Key)
		total += o.Size
	}
	fmt.Fprintf(w, "%d\t  %d objects\t\n", total, len(objs))
	return w.Flush()
}

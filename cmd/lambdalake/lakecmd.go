package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/internal/config"
	"github.com/lambdalake/lambdalake/lake"
)

func openLake(ctx context.Context, cfg *config.Config) (lake.Store, error) {
	return lake.Open(ctx, cfg.Lake.StoreConfig())
}

func init() {
	commands["lake"] = command{"inspect the lake: lake ls [prefix] (deadletter/: counts by schema, hour and reason)", runLake}
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
	return lakeList(ctx, os.Stdout, store, fs.Arg(0))
}

// lakeList lists the objects under prefix, then, when any of them are dead
// letters, what they hold: records by schema, ingest hour and reason, with
// an example error, so an operator sees "4 future" without reading Parquet.
func lakeList(ctx context.Context, out io.Writer, store lake.Store, prefix string) error {
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SIZE\tMODIFIED\tKEY")
	var total int64
	type cell struct {
		schema string
		hour   time.Time
	}
	listed := map[cell]bool{}
	var schemaNames []string
	for _, o := range objs {
		fmt.Fprintf(w, "%d\t%s\t%s\n", o.Size, o.Modified.UTC().Format(time.RFC3339), o.Key)
		total += o.Size
		if rest, ok := strings.CutPrefix(o.Key, "deadletter/"); ok {
			schema, _, _ := strings.Cut(rest, "/")
			if h, ok := lake.PartitionHour(o.Key); ok {
				if !listed[cell{schema, time.Time{}}] {
					listed[cell{schema, time.Time{}}] = true
					schemaNames = append(schemaNames, schema)
				}
				listed[cell{schema, h}] = true
			}
		}
	}
	fmt.Fprintf(w, "%d\t%d objects\t\n", total, len(objs))
	if err := w.Flush(); err != nil {
		return err
	}
	if len(schemaNames) == 0 {
		return nil
	}
	counts, err := raw.NewDeadLetterSummary(store).Count(ctx, schemaNames)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\ndead letters (records; one stored twice by a crash counts once):")
	w = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEMA\tINGESTED (hour)\tREASON\tRECORDS\tEXAMPLE")
	for _, c := range counts {
		if !listed[cell{c.Schema, c.Hour}] {
			continue // outside the prefix listed
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", c.Schema, c.Hour.Format(time.RFC3339), c.Reason, c.Count, oneLine(c.Example, 100))
	}
	return w.Flush()
}

// oneLine makes an error text fit a table row.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

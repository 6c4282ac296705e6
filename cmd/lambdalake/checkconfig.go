package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
)

func init() {
	commands["check-config"] = command{"validate the config and summarise schemas and views", runCheckConfig}
}

func runCheckConfig(ctx context.Context, args []string) error {
	fs, path := flagSet("check-config")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "config %s is valid\n\n", *path)
	fmt.Fprintf(w, "kafka\t%s (%d partitions for new topics)\n", strings.Join(cfg.Kafka.Brokers, ","), cfg.Kafka.Partitions)
	fmt.Fprintf(w, "redis\t%s\n", strings.Join(cfg.Redis.Addrs, ","))
	fmt.Fprintf(w, "lake\t%s\n", cfg.Lake.URL)
	fmt.Fprintf(w, "http\t%s (%d tokens)\n\n", cfg.HTTP.Addr, len(cfg.HTTP.Tokens))
	fmt.Fprintln(w, "SCHEMA\tTOPIC\tTIME\tID\tFIELDS")
	for _, s := range cfg.SchemaList {
		var fields []string
		for _, f := range s.Fields {
			opt := ""
			if f.Optional {
				opt = "?"
			}
			fields = append(fields, f.Name+":"+f.Type.String()+opt)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Topic, s.Time, dash(s.ID), strings.Join(fields, " "))
	}
	fmt.Fprintln(w, "\nVIEW\tSCHEMA\tGRAIN\tDIMENSIONS\tMETRICS\tHOT\tLATENESS\tFINGERPRINT")
	for _, v := range cfg.ViewList {
		var ms []string
		for _, m := range v.Metrics {
			arg := m.Field
			ms = append(ms, fmt.Sprintf("%s=%s(%s)", m.Name, m.Agg, arg))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Schema.Name, v.Granularity,
			dash(strings.Join(v.Dimensions, ",")), strings.Join(ms, " "), v.HotRetention, v.Lateness, v.Fingerprint())
	}
	return w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

func init() {
	commands["query"] = command{"query a view over HTTP and print a table", runQuery}
}

const queryUsage = "lambdalake query VIEW --from T --to T [--step D] [--group-by d1,d2] [--where dim:value ...] [--metrics m1,m2] [--server URL] [--token T] [--format table|json|csv|ndjson]"

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

func runQuery(ctx context.Context, args []string) error {
	fs, path := flagSet("query")
	server := fs.String("server", "", "API base URL (default: http://<http.addr of the config>)")
	token := fs.String("token", os.Getenv("LAMBDALAKE_TOKEN"), "bearer token with read:views (env LAMBDALAKE_TOKEN)")
	from := fs.String("from", "", "start, RFC 3339 or epoch ms (default: to - 1h)")
	to := fs.String("to", "", "end, exclusive (default: now)")
	step := fs.String("step", "", "step, a multiple of the view granularity (default: the granularity)")
	groupBy := fs.String("group-by", "", "dimensions to group by, comma-separated")
	metrics := fs.String("metrics", "", "metrics to show, comma-separated (default: all)")
	format := fs.String("format", "table", "table, json, csv or ndjson")
	var where repeated
	fs.Var(&where, "where", "dimension:value filter (repeatable)")
	var view string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		view, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if view == "" && fs.NArg() == 1 {
		view = fs.Arg(0)
	} else if fs.NArg() > 0 || view == "" {
		return fmt.Errorf("%w: %s", errUsage, queryUsage)
	}
	if *server == "" {
		cfg, err := loadConfig(*path)
		if err != nil {
			return err
		}
		*server = "http://" + cfg.HTTP.Addr
	}
	now := time.Now().UTC()
	if *to == "" {
		*to = now.Format(time.RFC3339)
	}
	if *from == "" {
		t, err := time.Parse(time.RFC3339, *to)
		if err != nil {
			return fmt.Errorf("%w: --from is required when --to is not RFC 3339", errUsage)
		}
		*from = t.Add(-time.Hour).Format(time.RFC3339)
	}
	q := url.Values{"from": {*from}, "to": {*to}}
	for k, v := range map[string]string{"step": *step, "group_by": *groupBy, "metrics": *metrics} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, w := range where {
		q.Add("where", w)
	}
	switch *format {
	case "table":
	case "json", "csv", "ndjson":
		q.Set("format", *format)
	default:
		return fmt.Errorf("%w: --format: want table, json, csv or ndjson", errUsage)
	}
	u := strings.TrimRight(*server, "/") + "/v1/views/" + url.PathEscape(view) + "/query?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("query %s: %w", *server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("query %s: read answer: %w", *server, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Param string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			if e.Param != "" {
				return fmt.Errorf("%s (parameter %s): %s", resp.Status, e.Param, e.Error)
			}
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if *format != "table" {
		_, err := os.Stdout.Write(body)
		return err
	}
	return printTable(os.Stdout, body)
}

// answer is the part of a query answer the table shows.
type queryAnswer struct {
	View        string            `json:"view"`
	From        string            `json:"from"`
	To          string            `json:"to"`
	Step        string            `json:"step"`
	Boundary    *string           `json:"boundary"`
	Sources     map[string]any    `json:"sources"`
	Gaps        [][2]string       `json:"gaps"`
	Approximate []string          `json:"approximate"`
	Rows        []json.RawMessage `json:"rows"`
}

// printTable prints the rows in their answer's column order (t, group_by,
// metrics), then where the figures came from.
func printTable(w io.Writer, body []byte) error {
	var a queryAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("query: decode answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	var cols []string
	for i, raw := range a.Rows {
		keys, vals, err := orderedObject(raw)
		if err != nil {
			return fmt.Errorf("query: decode row %d: %w", i, err)
		}
		if cols == nil {
			cols = keys
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b := "none"
	if a.Boundary != nil {
		b = *a.Boundary
	}
	src, _ := json.Marshal(a.Sources)
	fmt.Fprintf(w, "\n%d rows  view=%s  [%s, %s) step=%s  boundary=%s\nsources=%s\n", len(a.Rows), a.View, a.From, a.To, a.Step, b, src)
	if len(a.Gaps) > 0 {
		fmt.Fprintf(w, "GAPS (no layer holds these; absent from the rows): %v\n", a.Gaps)
	}
	if len(a.Approximate) > 0 {
		fmt.Fprintf(w, "approximate (HyperLogLog): %s\n", strings.Join(a.Approximate, ", "))
	}
	return nil
}

// orderedObject returns a flat JSON object's keys and values as text, in
// document order.
func orderedObject(raw []byte) (keys, vals []string, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		v, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, fmt.Sprint(k))
		if v == nil {
			vals = append(vals, "null")
		} else {
			vals = append(vals, fmt.Sprint(v))
		}
	}
	return keys, vals, nil
}

package main

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"strings"

	"github.com/lambdalake/lambdalake/bench/internal/duck"
	"github.com/lambdalake/lambdalake/schemas"
)

// duckCopy times DuckDB's COPY of the NDJSON file into one Parquet file
// (zstd) and prints seconds, CPU seconds and peak RSS in MB.
const duckCopy = `
import duckdb, resource, sys, time
src, out, threads, select = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
con = duckdb.connect()
con.execute("SET threads=" + threads)
con.execute("SET enable_progress_bar=false")
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
con.execute("COPY (" + select.replace("$SRC", src) + ") TO '" + out + "' (FORMAT parquet, COMPRESSION zstd)")
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"{dt:.6f} {(r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime):.3f} {r1.ru_maxrss / 1024:.0f}")
`

// duckSelect is the SELECT DuckDB runs over the NDJSON file ($SRC): every
// schema field read as JSON, kept only when our decoder would accept the
// record (required fields present and of their JSON type, the time an RFC
// 3339 string or integer epoch milliseconds, numbers finite), and cast to
// the column types of our raw files (strings VARCHAR, timestamp
// TIMESTAMPTZ in µs, float64 DOUBLE, int64 BIGINT, bool BOOLEAN,
// decimal(P,S) DECIMAL(P,S)).
func duckSelect(s *schemas.Schema) string {
	var cols, conds, sel []string
	for _, f := range s.Fields {
		cols = append(cols, f.Name+": 'JSON'")
		v := f.Name
		var typeOK, expr string
		switch f.Type.Kind() {
		case schemas.Decimal:
			// A number or a string holding one, as our decoder reads it
			// (gen sends both, every value within P and S).
			typeOK = fmt.Sprintf("json_type(%s) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR')", v)
			expr = fmt.Sprintf("CAST(%s->>'$' AS DECIMAL(%d,%d))", v, f.Type.Precision(), f.Type.Scale())
		case schemas.String:
			typeOK, expr = fmt.Sprintf("json_type(%s) = 'VARCHAR'", v), fmt.Sprintf("%s->>'$'", v)
		case schemas.Int64:
			typeOK, expr = fmt.Sprintf("json_type(%s) IN ('BIGINT', 'UBIGINT')", v), fmt.Sprintf("%s::BIGINT", v)
		case schemas.Float64:
			typeOK, expr = fmt.Sprintf("json_type(%s) IN ('BIGINT', 'UBIGINT', 'DOUBLE')", v), fmt.Sprintf("%s::DOUBLE", v)
		case schemas.Bool:
			typeOK, expr = fmt.Sprintf("json_type(%s) = 'BOOLEAN'", v), fmt.Sprintf("%s::BOOLEAN", v)
		case schemas.Timestamp:
			// try_cast: an unparsable time makes the record malformed, not the query fail.
			expr = fmt.Sprintf("CASE json_type(%[1]s) WHEN 'VARCHAR' THEN try_cast(%[1]s->>'$' AS TIMESTAMPTZ) "+
				"WHEN 'BIGINT' THEN make_timestamp(%[1]s::BIGINT * 1000)::TIMESTAMPTZ WHEN 'UBIGINT' THEN make_timestamp(%[1]s::BIGINT * 1000)::TIMESTAMPTZ END", v)
			typeOK = "(" + expr + ") IS NOT NULL"
		}
		if f.Optional {
			typeOK = fmt.Sprintf("(%s IS NULL OR json_type(%s) = 'NULL' OR %s)", v, v, typeOK)
			expr = fmt.Sprintf("CASE WHEN json_type(%s) = 'NULL' THEN NULL ELSE %s END", v, expr)
		}
		conds = append(conds, typeOK)
		sel = append(sel, expr+" AS "+v)
	}
	return fmt.Sprintf("SELECT %s FROM read_json('$SRC', format='newline_delimited', ignore_errors=true, columns={%s}) WHERE %s",
		strings.Join(sel, ", "), strings.Join(cols, ", "), strings.Join(conds, " AND "))
}

// duckSums prints, for a Parquet glob, the row count and per column the
// non-null count and an order-independent checksum of the values.
const duckSums = `
import duckdb, sys
glob, cols = sys.argv[1], sys.argv[2].split("|")
con = duckdb.connect()
con.execute("SET enable_progress_bar=false")
parts = ["count(*)"] + [f"count({c}), sum(hash({c}))::VARCHAR" for c in cols]
row = con.execute("SELECT " + ", ".join(parts) + f" FROM read_parquet('{glob}')").fetchone()
print(" ".join(str(x) for x in row))
`

// sameRows reads our raw files and DuckDB's file with DuckDB and compares
// row counts and per-column checksums over the schema's columns; want is
// the number of records both should hold (valid + duplicates).
func sameRows(ctx context.Context, python string, s *schemas.Schema, oursDir, duckOut string, want int64) (bool, error) {
	var cols, exprs []string
	for _, f := range s.Fields {
		cols = append(cols, f.Name)
		e := f.Name
		if f.Type == schemas.Timestamp {
			e = "epoch_us(" + f.Name + ")" // TIMESTAMP or TIMESTAMPTZ alike
		}
		exprs = append(exprs, e)
	}
	ours, err := duck.Run(ctx, python, duckSums, filepath.Join(oursDir, "**", "*.parquet"), strings.Join(exprs, "|"))
	if err != nil {
		return false, err
	}
	theirs, err := duck.Run(ctx, python, duckSums, duckOut, strings.Join(exprs, "|"))
	if err != nil {
		return false, err
	}
	log.Printf("ours:   rows %s", ours[0])
	log.Printf("duckdb: rows %s", theirs[0])
	equal := len(ours) == len(theirs) && ours[0] == theirs[0] && ours[0] == fmt.Sprint(want)
	for i, c := range cols {
		a, b := ours[1+2*i:3+2*i], theirs[1+2*i:3+2*i]
		same := a[0] == b[0] && a[1] == b[1]
		log.Printf("column %-9s ours count=%s sum(hash)=%s, duckdb count=%s sum(hash)=%s %s", c, a[0], a[1], b[0], b[1], map[bool]string{true: "equal", false: "DIFFER"}[same])
		equal = equal && same
	}
	if ours[0] != fmt.Sprint(want) {
		log.Printf("our raw lake holds %s rows, want %d (valid + duplicates)", ours[0], want)
	}
	return equal, nil
}

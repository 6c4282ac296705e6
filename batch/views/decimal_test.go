package views

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

func decType(t *testing.T, p, s int) schemas.Type {
	t.Helper()
	typ, err := schemas.DecimalType(p, s)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

// decimalView sums, mins and maxes a decimal(18,2) amount and mins a
// decimal(9,3) rate: the column kinds a decimal metric can have.
func decimalView(t *testing.T, amount schemas.Type) *schemas.View {
	s, err := schemas.NewSchema("m", "m", "ts", "", []schemas.Field{
		{Name: "ts", Type: schemas.Timestamp}, {Name: "amount", Type: amount},
		{Name: "rate", Type: decType(t, 9, 3), Optional: true}})
	if err != nil {
		t.Fatal(err)
	}
	return &schemas.View{Name: "money", Schema: s, Granularity: time.Minute, Metrics: []schemas.Metric{
		{Name: "revenue", Agg: schemas.Sum, Field: "amount"},
		{Name: "biggest", Agg: schemas.Max, Field: "amount"},
		{Name: "smallest", Agg: schemas.Min, Field: "rate"},
	}}
}

// decimalColumns has sums of 19 digits (past DECIMAL(18,2)), the int64
// extremes, a null and an overflowed sum.
func decimalColumns() *Columns {
	t0 := hour(0).UnixMicro()
	return &Columns{T: []int64{t0, t0 + 60e6, t0 + 120e6, t0 + 180e6}, Metrics: []MetricColumn{
		{Ints: []int64{math.MaxInt64, math.MinInt64, 0, 2520925248}, Valid: []bool{true, true, false, true}, Overflow: []bool{false, false, true, false}},
		{Ints: []int64{999999999999999999, -999999999999999999, 1, 1250}, Valid: []bool{true, true, true, true}},
		{Ints: []int64{-999999999, 0, 0, 5}, Valid: []bool{true, false, true, true}},
	}}
}

// Decimal metrics travel through a view file exactly: min and max as the
// field's DECIMAL(P,S) stored as INT64 or INT32, a sum as DECIMAL(38,S)
// (its 19 digits do not fit DECIMAL(18,S)), each read back to the scaled
// int64 it was, nulls and overflow flags kept.
func TestDecimalRoundTrip(t *testing.T) {
	v := decimalView(t, decType(t, 18, 2))
	cols := decimalColumns()
	b, err := Encode(v, cols, 1)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Decode(context.Background(), v, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != cols.Len() {
		t.Fatalf("%d rows, want %d", len(rows), cols.Len())
	}
	for r, row := range rows {
		for mi := range v.Metrics {
			c := cols.Metrics[mi]
			want := schemas.Value{Int: c.Ints[r]}
			if !c.Valid[r] {
				want = schemas.Value{Null: true}
			}
			if row.Values[mi] != want {
				t.Errorf("row %d %s: %+v, want %+v", r, v.Metrics[mi].Name, row.Values[mi], want)
			}
			ovf := c.Overflow != nil && c.Overflow[r]
			if got := row.Overflow != nil && row.Overflow[mi]; got != ovf {
				t.Errorf("row %d %s: overflow %v, want %v", r, v.Metrics[mi].Name, got, ovf)
			}
		}
	}

	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	for _, tc := range []struct {
		col        string
		phys       parquet.Type
		prec, scal int32
	}{
		{"revenue", parquet.Types.FixedLenByteArray, 38, 2},
		{"biggest", parquet.Types.Int64, 18, 2},
		{"smallest", parquet.Types.Int32, 9, 3},
	} {
		i := pf.MetaData().Schema.ColumnIndexByName(tc.col)
		if i < 0 {
			t.Fatalf("no column %s", tc.col)
		}
		c := pf.MetaData().Schema.Column(i)
		dl, ok := c.LogicalType().(interface {
			Precision() int32
			Scale() int32
		}) // schema.DecimalLogicalType's
		if c.PhysicalType() != tc.phys || !ok || dl.Precision() != tc.prec || dl.Scale() != tc.scal {
			t.Errorf("column %s: %s %s, want %s DECIMAL(%d,%d)", tc.col, c.PhysicalType(), c.LogicalType(), tc.phys, tc.prec, tc.scal)
		}
	}
}

// A file whose decimal column has another scale than the field (the same
// digits would be another number) is refused, as is a value beyond int64.
func TestDecimalRefused(t *testing.T) {
	b, err := Encode(decimalView(t, decType(t, 18, 3)), decimalColumns(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(context.Background(), decimalView(t, decType(t, 18, 2)), b); err == nil || !strings.Contains(err.Error(), "stored as decimal(38, 3)") {
		t.Errorf("a scale-3 column read as scale 2: %v", err)
	}

	db := array.NewDecimal128Builder(memory.DefaultAllocator, &arrow.Decimal128Type{Precision: 38, Scale: 2})
	defer db.Release()
	db.Append(decimal128.FromI64(7))
	db.AppendNull()
	db.Append(decimal128.FromI64(math.MaxInt64).Add(decimal128.FromI64(1)))
	a := db.NewDecimal128Array()
	defer a.Release()
	if _, err := decimalInts(a, decType(t, 18, 2)); err == nil || !strings.Contains(err.Error(), "does not fit 64 bits: 92233720368547758.08") {
		t.Errorf("a value past int64: %v", err)
	}
	ok := array.NewDecimal128Builder(memory.DefaultAllocator, &arrow.Decimal128Type{Precision: 38, Scale: 2})
	defer ok.Release()
	ok.Append(decimal128.FromI64(math.MinInt64))
	ok.AppendNull()
	oa := ok.NewDecimal128Array()
	defer oa.Release()
	ints, err := decimalInts(oa, decType(t, 18, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer ints.Release()
	if ints.Value(0) != math.MinInt64 || !ints.IsNull(1) {
		t.Errorf("narrowed %v", ints)
	}
}

// DuckDB reads a view file's decimal metrics as DECIMAL with their exact
// digits, and sums them as our int64 sum of the scaled values.
func TestDecimalViewFileDuckDB(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DuckDB")
	}
	python := testenv.DuckDBPython(t)
	v := decimalView(t, decType(t, 18, 2))
	cols := decimalColumns()
	cols.Metrics[0].Ints[0], cols.Metrics[0].Ints[1] = 999999999999999999*9, -999999999999999999*9 // sums 19 digits wide
	b, err := Encode(v, cols, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "view.parquet")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	query := `SELECT typeof(revenue), typeof(biggest), typeof(smallest), CAST(revenue AS VARCHAR), CAST(biggest AS VARCHAR),
		CAST(smallest AS VARCHAR), revenue_overflow FROM read_parquet('` + p + `') ORDER BY t`
	script := `import duckdb, json, sys
rows = duckdb.connect().execute(sys.argv[1]).fetchall()
print(json.dumps([[None if v is None else str(v) for v in r] for r in rows]))`
	out, err := exec.Command(python, "-c", script, query).Output()
	if err != nil {
		t.Fatalf("duckdb: %v", err)
	}
	var got [][]*string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("duckdb output %q: %v", out, err)
	}
	str := func(s *string) string {
		if s == nil {
			return "NULL"
		}
		return *s
	}
	want := [][]string{
		{"DECIMAL(38,2)", "DECIMAL(18,2)", "DECIMAL(9,3)", "89999999999999999.91", "9999999999999999.99", "-999999.999", "False"},
		{"DECIMAL(38,2)", "DECIMAL(18,2)", "DECIMAL(9,3)", "-89999999999999999.91", "-9999999999999999.99", "NULL", "False"},
		{"DECIMAL(38,2)", "DECIMAL(18,2)", "DECIMAL(9,3)", "NULL", "0.01", "0.000", "True"},
		{"DECIMAL(38,2)", "DECIMAL(18,2)", "DECIMAL(9,3)", "25209252.48", "12.50", "0.005", "False"},
	}
	if len(got) != len(want) {
		t.Fatalf("duckdb rows %q", out)
	}
	for r := range want {
		for c := range want[r] {
			if s := str(got[r][c]); s != want[r][c] {
				t.Errorf("row %d column %d: DuckDB reads %s, want %s", r, c, s, want[r][c])
			}
		}
	}
}

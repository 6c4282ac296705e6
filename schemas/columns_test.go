package schemas

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// Raw files are written with parquet-go and read back with Arrow; this test
// pins that the two agree on every column, optional nulls included.
func TestRawLayoutRoundTripThroughArrow(t *testing.T) {
	s := ordersSchema(t)
	events := []string{
		`{"order_id":"o1","ts":"2026-11-27T10:30:15.123456Z","tenant":"acme","qty":3,"amount":12.5,"paid":true,"coupon":"X"}`,
		`{"order_id":"o2","ts":"2026-11-27T10:31:00Z","tenant":"beta","qty":-1,"amount":0.25,"paid":false}`,
	}
	layout := s.RawLayout()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, layout.Schema)
	d := NewDecoder(s)
	rows := make([]Row, len(events))
	for i, e := range events {
		if err := d.Decode([]byte(e), &rows[i]); err != nil {
			t.Fatal(err)
		}
		pr := layout.AppendRow(nil, &rows[i], 3, int64(100+i), 1_800_000_000_000_000)
		if _, err := w.WriteRows([]parquet.Row{pr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	pf, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 2 {
		t.Fatalf("rows = %d, want 2", tbl.NumRows())
	}
	want := s.ArrowSchema()
	for _, f := range want.Fields() {
		idx := tbl.Schema().FieldIndices(f.Name)
		if len(idx) != 1 {
			t.Fatalf("column %s missing", f.Name)
		}
		got := tbl.Schema().Field(idx[0])
		if !arrow.TypeEqual(got.Type, f.Type) {
			t.Errorf("column %s: type %v, want %v", f.Name, got.Type, f.Type)
		}
	}
	col := func(name string) arrow.Array {
		return tbl.Column(tbl.Schema().FieldIndices(name)[0]).Data().Chunk(0)
	}
	if got := col("order_id").(*array.String).Value(1); got != "o2" {
		t.Errorf("order_id[1] = %q", got)
	}
	if got := col("ts").(*array.Timestamp).Value(0); int64(got) != rows[0].Values[1].Int {
		t.Errorf("ts[0] = %d, want %d", got, rows[0].Values[1].Int)
	}
	if got := col("qty").(*array.Int64).Value(1); got != -1 {
		t.Errorf("qty[1] = %d", got)
	}
	if got := col("amount").(*array.Float64).Value(0); got != 12.5 {
		t.Errorf("amount[0] = %v", got)
	}
	if p := col("paid").(*array.Boolean); !p.Value(0) || p.Value(1) {
		t.Errorf("paid = %v %v", p.Value(0), p.Value(1))
	}
	if c := col("coupon").(*array.String); c.IsNull(0) || c.Value(0) != "X" || !c.IsNull(1) {
		t.Errorf("coupon: null(0)=%v value(0)=%q null(1)=%v", c.IsNull(0), c.Value(0), c.IsNull(1))
	}
	if got := col(ColPartition).(*array.Int32).Value(0); got != 3 {
		t.Errorf("_partition = %d", got)
	}
	if got := col(ColOffset).(*array.Int64).Value(1); got != 101 {
		t.Errorf("_offset[1] = %d", got)
	}
}

// rawBufferSchema has a field of every type, and optional ones of every
// type, so that nulls are exercised in each column kind.
func rawBufferSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := NewSchema("events", "events", "ts", "id", []Field{
		{Name: "id", Type: String},
		{Name: "ts", Type: Timestamp},
		{Name: "n", Type: Int64, Optional: true},
		{Name: "x", Type: Float64},
		{Name: "y", Type: Float64, Optional: true},
		{Name: "ok", Type: Bool, Optional: true},
		{Name: "note", Type: String, Optional: true},
		{Name: "d", Type: decType(t, 18, 2)},
		{Name: "e", Type: decType(t, 9, 3), Optional: true}, // an INT32 column
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawBufferRow is row i of a test: nulls, empty strings and the given id.
func rawBufferRow(i int, id string) Row {
	return Row{Values: []Value{
		{Str: id},
		{Int: 1_800_000_000_000_000 + int64(i)*1000},
		{Int: int64(i) - 7, Null: i%3 == 0},
		{Float: float64(i) / 4},
		{Float: -float64(i), Null: i%2 == 1},
		{Int: int64(i % 2), Null: i%5 == 0},
		{Str: []string{"", "", "n" + id}[i%3], Null: i%4 == 0},
		{Int: int64(i)*123_456_789_012 - 999_999_999_999_999_999},
		{Int: 999_999_999 - int64(i)*7, Null: i%3 == 1},
	}}
}

// RawBuffer must write exactly the rows AppendRow makes, in the order
// asked for, whatever chunks its columns and strings span.
func TestRawBufferWritesRowsInOrder(t *testing.T) {
	short := func(i int) string { return fmt.Sprintf("id-%06d", i) }
	identity := func(n int) []int32 {
		o := make([]int32, n)
		for i := range o {
			o[i] = int32(i)
		}
		return o
	}
	reversed := func(n int) []int32 {
		o := identity(n)
		slices.Reverse(o)
		return o
	}
	shuffled := func(n int) []int32 {
		o := identity(n)
		rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { o[i], o[j] = o[j], o[i] })
		return o
	}
	tests := []struct {
		name  string
		rows  int
		id    func(i int) string
		order func(n int) []int32
	}{
		{"one row", 1, short, identity},
		{"in order", 10, short, identity},
		{"reversed, across value chunks", 3*4096 + 7, short, reversed},
		{"shuffled, strings across byte chunks", 300, func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 900+i) }, shuffled},
		{"strings around a byte chunk's size", 7, func(i int) string {
			return strings.Repeat(string(rune('k'+i)), []int{65535, 65536, 70_000, 3, 0, 65534, 1}[i])
		}, reversed},
		{"a subset of the rows", 50, short, func(n int) []int32 { return []int32{49, 0, 25, 3} }},
	}
	s := rawBufferSchema(t)
	layout := s.RawLayout()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := make([]Row, tt.rows)
			for i := range rows {
				rows[i] = rawBufferRow(i, tt.id(i))
			}
			rb := layout.NewBuffer(5)
			// Fill and release once first: pooled chunks come back dirty.
			for i := range rows {
				rb.Append(&rows[len(rows)-1-i], 1, 2)
			}
			rb.Release()
			if rb.Len() != 0 {
				t.Fatalf("Len after Release = %d", rb.Len())
			}
			for i := range rows {
				rb.Append(&rows[i], int64(1000+i), int64(5000+i))
			}
			if rb.Len() != len(rows) {
				t.Fatalf("Len = %d, want %d", rb.Len(), len(rows))
			}
			if got := rb.Offsets(nil); len(got) != len(rows) || got[len(got)-1] != int64(999+len(rows)) {
				t.Errorf("Offsets: %d values, last %d", len(got), got[len(got)-1])
			}
			if got := rb.Int64s(1, nil); got[len(got)-1] != rows[len(rows)-1].Values[1].Int {
				t.Errorf("Int64s(ts): last %d, want %d", got[len(got)-1], rows[len(rows)-1].Values[1].Int)
			}
			order := tt.order(len(rows))

			var file bytes.Buffer
			w := parquet.NewWriter(&file, layout.Schema)
			if err := rb.WriteColumns(w.ColumnWriters(), order); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r := parquet.NewReader(bytes.NewReader(file.Bytes()))
			defer r.Close()
			if r.NumRows() != int64(len(order)) {
				t.Fatalf("file holds %d rows, want %d", r.NumRows(), len(order))
			}
			got := make([]parquet.Row, len(order))
			for read := 0; read < len(got); {
				n, err := r.ReadRows(got[read:])
				read += n
				if n == 0 && err != nil {
					t.Fatalf("read rows after %d: %v", read, err)
				}
			}
			for k, i := range order {
				want := layout.AppendRow(nil, &rows[i], 5, int64(1000+i), int64(5000+i))
				if !want.Equal(got[k]) {
					t.Fatalf("row %d (appended %d):\n got %v\nwant %v", k, i, got[k], want)
				}
			}
		})
	}
}

// A decimal column is a Parquet DECIMAL(P,S) on INT64 (INT32 up to 9
// digits), as the compactor's buffer writes it; pqarrow reads it as
// Decimal128(P,S) (ArrowType), and ScaledInt64s gives back the exact
// scaled values, nulls kept.
func TestRawDecimalThroughArrow(t *testing.T) {
	s := moneySchema(t)
	layout := s.RawLayout()
	for _, tt := range []struct {
		field    string
		physical parquet.Kind
	}{{"amount", parquet.Int64}, {"rate", parquet.Int32}} {
		leaf, ok := layout.Schema.Lookup(tt.field)
		if !ok {
			t.Fatalf("no column %s", tt.field)
		}
		f, _ := s.Field(tt.field)
		lt := leaf.Node.Type().LogicalType()
		dec, _ := lt.Value.(*format.DecimalType)
		if leaf.Node.Type().Kind() != tt.physical || dec == nil ||
			int(dec.Precision) != f.Type.Precision() || int(dec.Scale) != f.Type.Scale() {
			t.Errorf("column %s: %v %v, want DECIMAL(%d,%d) on %v", tt.field, leaf.Node.Type().Kind(), lt, f.Type.Precision(), f.Type.Scale(), tt.physical)
		}
	}
	events := []string{
		`{"order_id":"o1","ts":"2026-11-27T10:30:15Z","amount":"9999999999999999.99","rate":-999999.999}`,
		`{"order_id":"o2","ts":"2026-11-27T10:31:00Z","amount":-0.01}`,
		`{"order_id":"o3","ts":"2026-11-27T10:32:00Z","amount":25209252.48,"rate":"0.5"}`,
	}
	want := [][2]int64{{999999999999999999, -999999999}, {-1, 0}, {2520925248, 500}}
	d := NewDecoder(s)
	rb := layout.NewBuffer(0)
	defer rb.Release()
	for i, e := range events {
		var r Row
		if err := d.Decode([]byte(e), &r); err != nil {
			t.Fatal(err)
		}
		rb.Append(&r, int64(i), 0)
	}
	var out bytes.Buffer
	w := parquet.NewWriter(&out, layout.Schema)
	if err := rb.WriteColumns(w.ColumnWriters(), []int32{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	for fi, name := range []string{"amount", "rate"} {
		f, _ := s.Field(name)
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 || !arrow.TypeEqual(tbl.Schema().Field(idx[0]).Type, ArrowType(f.Type)) {
			t.Fatalf("column %s: %v, want %v", name, tbl.Schema(), ArrowType(f.Type))
		}
		ints, err := ScaledInt64s(memory.DefaultAllocator, tbl.Column(idx[0]).Data().Chunk(0), f.Type)
		if err != nil {
			t.Fatal(err)
		}
		defer ints.Release()
		for r := range want {
			null := name == "rate" && r == 1
			if ints.IsNull(r) != null || !null && ints.Value(r) != want[r][fi] {
				t.Errorf("%s[%d] = %d (null %v), want %d (null %v)", name, r, ints.Value(r), ints.IsNull(r), want[r][fi], null)
			}
		}
	}
}

// ScaledInt64s refuses what it cannot narrow exactly: another type, or a
// value beyond 64 bits (a wider column than the type says).
func TestScaledInt64sRefuses(t *testing.T) {
	typ := decType(t, 18, 2)
	b := array.NewDecimal128Builder(memory.DefaultAllocator, ArrowType(typ).(*arrow.Decimal128Type))
	b.Append(decimal128.FromI64(5))
	b.Append(decimal128.New(1, 0)) // 2^64: beyond int64
	a := b.NewArray()
	defer a.Release()
	b.Release()
	if _, err := ScaledInt64s(memory.DefaultAllocator, a, typ); err == nil || !strings.Contains(err.Error(), "does not fit 64 bits") {
		t.Errorf("a value of 2^64: %v", err)
	}
	if _, err := ScaledInt64s(memory.DefaultAllocator, a, decType(t, 18, 3)); err == nil {
		t.Error("a decimal(18,2) column read as decimal(18,3)")
	}
	neg := array.NewDecimal128Builder(memory.DefaultAllocator, ArrowType(typ).(*arrow.Decimal128Type))
	neg.Append(decimal128.FromI64(-999999999999999999))
	na := neg.NewArray()
	defer na.Release()
	neg.Release()
	got, err := ScaledInt64s(memory.DefaultAllocator, na, typ)
	if err != nil || got.Value(0) != -999999999999999999 {
		t.Errorf("negative: %v, %v", got, err)
	}
	got.Release()
}

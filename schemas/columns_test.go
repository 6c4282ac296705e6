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
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
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

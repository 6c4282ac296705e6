package schemas

import (
	"bytes"
	"context"
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

package views

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lambdalake/lambdalake/schemas"
)

// A view file (views/{view}/dt=/hr=/view.parquet) holds one hour of a view
// at its grain, rows sorted by t then dimensions:
//
//	t             timestamp[us, UTC]   bucket start
//	<dimension>   string | int64 | bool (nullable when the field is optional)
//	<count>       int64
//	<sum|min|max> float64 or int64, as the field; null when every value was null
//	<uniq>        int64                exact distinct count at this grain
//	<uniq>_hll    binary               Redis-format HyperLogLog of the same values
//
// Plain Parquet (zstd), so DuckDB and friends read the views as they are.
// The file's key-value metadata records the view fingerprint and the
// version, which _state.json also holds (readers go by _state.json; the
// metadata is for whoever reads the files alone).

// TimeColumn is the bucket column of view files.
const TimeColumn = "t"

// HLLColumn is the sketch column of a uniq metric.
func HLLColumn(metric string) string { return metric + "_hll" }

const (
	metaFingerprint = "lambdalake.fingerprint"
	metaVersion     = "lambdalake.version"
)

// Columns is one hour of a view at its grain, rows sorted by t then
// dimensions, a column per slice: what recompute's aggregation produces and
// a view file holds.
type Columns struct {
	T       []int64           // bucket start, Unix µs
	Dims    [][]schemas.Value // by dimension, in View.Dimensions order
	Metrics []MetricColumn    // in View.Metrics order
}

// MetricColumn holds one metric's values; which slice is used depends on the
// metric (Ints for count, uniq and int fields; Floats for float fields).
// Valid is false where sum/min/max saw no value (all null).
type MetricColumn struct {
	Ints   []int64
	Floats []float64
	Valid  []bool
	HLL    [][]byte // uniq only
}

// Len is the number of rows.
func (c *Columns) Len() int { return len(c.T) }

// Row is one (bucket, dimensions) row of a batch view hour.
type Row struct {
	T      int64           // bucket start, Unix µs
	Dims   []schemas.Value // in View.Dimensions order
	Values []schemas.Value // in View.Metrics order: Int for count, uniq and int64 fields, Float for float64 fields; Null when no value
	HLL    [][]byte        // in View.Metrics order; the sketch of a uniq metric, nil otherwise
	// Overflow marks, per metric, a sum that overflowed (schemas.IntSum,
	// FloatSum; its Value is Null); nil when none did.
	Overflow []bool
}

func dimArrowType(t schemas.Type) arrow.DataType {
	switch t {
	case schemas.String:
		return arrow.BinaryTypes.String
	case schemas.Bool:
		return arrow.FixedWidthTypes.Boolean
	}
	return arrow.PrimitiveTypes.Int64
}

func viewArrowSchema(v *schemas.View, version int64) *arrow.Schema {
	fs := []arrow.Field{{Name: TimeColumn, Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}}}
	for _, d := range v.Dimensions {
		f, _ := v.Schema.Field(d)
		fs = append(fs, arrow.Field{Name: d, Type: dimArrowType(f.Type), Nullable: f.Optional})
	}
	for _, m := range v.Metrics {
		switch {
		case m.Agg == schemas.Count || m.Agg == schemas.Uniq:
			fs = append(fs, arrow.Field{Name: m.Name, Type: arrow.PrimitiveTypes.Int64})
		case v.MetricType(m) == schemas.Float64:
			fs = append(fs, arrow.Field{Name: m.Name, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
		default:
			fs = append(fs, arrow.Field{Name: m.Name, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
		}
	}
	for _, m := range v.Metrics {
		if m.Agg == schemas.Uniq {
			fs = append(fs, arrow.Field{Name: HLLColumn(m.Name), Type: arrow.BinaryTypes.Binary})
		}
	}
	md := arrow.NewMetadata([]string{metaFingerprint, metaVersion}, []string{v.Fingerprint(), strconv.FormatInt(version, 10)})
	return arrow.NewSchema(fs, &md)
}

// Encode writes an hour's rows as a view Parquet file.
func Encode(v *schemas.View, h *Columns, version int64) ([]byte, error) {
	sc := viewArrowSchema(v, version)
	cols := arrowColumns(v, h, sc)
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	rec := array.NewRecordBatch(sc, cols, int64(h.Len()))
	defer rec.Release()
	b, err := writeParquet(v, rec)
	if err != nil {
		return nil, fmt.Errorf("views: encode view file: %w", err)
	}
	return b, nil
}

// arrowColumns builds the file's columns in schema order: t, dimensions,
// metrics, then the uniq metrics' sketches.
func arrowColumns(v *schemas.View, h *Columns, sc *arrow.Schema) []arrow.Array {
	mem := memory.DefaultAllocator
	n := h.Len()
	cols := make([]arrow.Array, 0, sc.NumFields())
	tb := array.NewTimestampBuilder(mem, sc.Field(0).Type.(*arrow.TimestampType))
	tb.Reserve(n)
	for _, t := range h.T {
		tb.UnsafeAppend(arrow.Timestamp(t))
	}
	cols = append(cols, tb.NewArray())
	tb.Release()

	for d, name := range v.Dimensions {
		f, _ := v.Schema.Field(name)
		cols = append(cols, dimColumn(mem, f.Type, h.Dims[d]))
	}
	for i, m := range v.Metrics {
		c := &h.Metrics[i]
		if v.MetricType(m) == schemas.Float64 {
			b := array.NewFloat64Builder(mem)
			b.AppendValues(c.Floats, c.Valid)
			cols = append(cols, b.NewArray())
			b.Release()
		} else {
			b := array.NewInt64Builder(mem)
			b.AppendValues(c.Ints, c.Valid)
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	for i, m := range v.Metrics {
		if m.Agg != schemas.Uniq {
			continue
		}
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		b.AppendValues(h.Metrics[i].HLL, nil)
		cols = append(cols, b.NewArray())
		b.Release()
	}
	return cols
}

// dimColumn builds a dimension's column from its values.
func dimColumn(mem memory.Allocator, t schemas.Type, vals []schemas.Value) arrow.Array {
	switch t {
	case schemas.String:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.Reserve(len(vals))
		for _, x := range vals {
			if x.Null {
				b.AppendNull()
			} else {
				b.Append(x.Str)
			}
		}
		return b.NewArray()
	case schemas.Bool:
		b := array.NewBooleanBuilder(mem)
		defer b.Release()
		b.Reserve(len(vals))
		for _, x := range vals {
			if x.Null {
				b.AppendNull()
			} else {
				b.Append(x.Int != 0)
			}
		}
		return b.NewArray()
	}
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.Reserve(len(vals))
	for _, x := range vals {
		if x.Null {
			b.AppendNull()
		} else {
			b.Append(x.Int)
		}
	}
	return b.NewArray()
}

// writeParquet writes the record as one zstd Parquet file.
func writeParquet(v *schemas.View, rec arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	// zstd at its fastest level: view files are written on every recompute
	// and are small next to the raw lake. Dictionaries pay off only for the
	// bucket and dimension columns; metrics and sketches are mostly distinct.
	opts := []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1),
		parquet.WithMaxRowGroupLength(1 << 20), parquet.WithStats(true), parquet.WithDictionaryDefault(false),
		parquet.WithDictionaryFor(TimeColumn, true)}
	for _, d := range v.Dimensions {
		opts = append(opts, parquet.WithDictionaryFor(d, true))
	}
	for _, m := range v.Metrics {
		if m.Agg == schemas.Uniq {
			opts = append(opts, parquet.WithStatsFor(HLLColumn(m.Name), false))
		}
	}
	props := parquet.NewWriterProperties(opts...)
	w, err := pqarrow.NewFileWriter(rec.Schema(), &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("write rows: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode reads a view file into rows. Columns are found by name, so a file
// written before a metric was added reads that metric as null.
func Decode(ctx context.Context, v *schemas.View, b []byte) ([]Row, error) {
	rows, err := decode(ctx, v, b)
	if err != nil {
		return nil, fmt.Errorf("views: decode view file: %w", err)
	}
	return rows, nil
}

func decode(ctx context.Context, v *schemas.View, b []byte) ([]Row, error) {
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, tbl.NumRows()+1)
	defer tr.Release()
	rows := make([]Row, 0, tbl.NumRows())
	sc := tbl.Schema()
	col := func(rec arrow.RecordBatch, name string) arrow.Array {
		idx := sc.FieldIndices(name)
		if len(idx) == 0 {
			return nil
		}
		return rec.Column(idx[0])
	}
	for tr.Next() {
		rec := tr.RecordBatch()
		ts, ok := col(rec, TimeColumn).(*array.Timestamp)
		if !ok {
			return nil, fmt.Errorf("no %s timestamp column", TimeColumn)
		}
		dims := make([]arrow.Array, len(v.Dimensions))
		for d, name := range v.Dimensions {
			if dims[d] = col(rec, name); dims[d] == nil {
				return nil, fmt.Errorf("no dimension %q", name)
			}
		}
		mets := make([]arrow.Array, len(v.Metrics))
		hlls := make([]*array.Binary, len(v.Metrics))
		for i, m := range v.Metrics {
			mets[i] = col(rec, m.Name)
			if m.Agg == schemas.Uniq {
				hlls[i], _ = col(rec, HLLColumn(m.Name)).(*array.Binary)
			}
		}
		nd, nm := len(v.Dimensions), len(v.Metrics)
		n := int(rec.NumRows())
		// One backing array per column kind for the whole batch: rows share it.
		dimVals := make([]schemas.Value, n*nd)
		metVals := make([]schemas.Value, n*nm)
		hllVals := make([][]byte, n*nm)
		for r := 0; r < n; r++ {
			row := Row{T: int64(ts.Value(r)), Dims: dimVals[r*nd : (r+1)*nd : (r+1)*nd],
				Values: metVals[r*nm : (r+1)*nm : (r+1)*nm], HLL: hllVals[r*nm : (r+1)*nm : (r+1)*nm]}
			for d, a := range dims {
				row.Dims[d] = valueAt(a, r)
			}
			for i, a := range mets {
				if a == nil {
					row.Values[i] = schemas.Value{Null: true}
					continue
				}
				row.Values[i] = valueAt(a, r)
				if h := hlls[i]; h != nil && h.IsValid(r) {
					row.HLL[i] = h.Value(r)
				}
			}
			rows = append(rows, row)
		}
	}
	if err := tr.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return rows, nil
}

func valueAt(a arrow.Array, i int) schemas.Value {
	if a.IsNull(i) {
		return schemas.Value{Null: true}
	}
	switch x := a.(type) {
	case *array.String:
		return schemas.Value{Str: x.Value(i)}
	case *array.Int64:
		return schemas.Value{Int: x.Value(i)}
	case *array.Float64:
		return schemas.Value{Float: x.Value(i)}
	case *array.Boolean:
		if x.Value(i) {
			return schemas.Value{Int: 1}
		}
		return schemas.Value{}
	case *array.Timestamp:
		return schemas.Value{Int: int64(x.Value(i))}
	}
	return schemas.Value{Null: true}
}

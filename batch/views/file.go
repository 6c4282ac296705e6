package views

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
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
//	<sum|min|max> float64 or int64, as the field; null when every value was
//	              null, or when the sum overflowed. Over a decimal(P,S)
//	              field: DECIMAL(P,S) for min and max, DECIMAL(38,S) for
//	              sum (see below)
//	<uniq>        int64                exact distinct count at this grain
//	<sum>_overflow bool                true where the sum overflowed (schemas.IntSum,
//	              FloatSum: a part of it left int64's or float64's finite range)
//	<uniq>_hll    binary               Redis-format HyperLogLog of the same values
//
// Decimal metrics are Parquet DECIMAL, so DuckDB and friends read them as
// the exact numbers they are (25209252.48), the scale in the file's schema
// rather than in our config. min and max have the field's own type, stored
// as INT32/INT64 like the raw lake's columns; a sum may need more digits
// than P (it is an int64 of scaled values under the overflow rule, up to
// 19 digits), so it is DECIMAL(38,S), the type SQL engines give
// SUM(DECIMAL(P,S)), in a 16-byte fixed-length column. Readers narrow both
// to the scaled int64 of schemas.Value.Int and refuse a column whose scale
// is not the field's or a value beyond int64.
//
// An overflowed sum is null with <sum>_overflow true, so a reader tells
// "overflowed" from "no values" (null, overflow false) and never sees a
// wrapped or infinite number; every sum metric has the column, false in
// every row of most files. Files written before the column existed read as
// not overflowed.
//
// Plain Parquet (zstd), so DuckDB and friends read the views as they are.
// The file's key-value metadata records the view fingerprint and the
// version, which _state.json also holds (readers go by _state.json; the
// metadata is for whoever reads the files alone).

// TimeColumn is the bucket column of view files.
const TimeColumn = "t"

// HLLColumn is the sketch column of a uniq metric.
func HLLColumn(metric string) string { return metric + "_hll" }

// OverflowColumn is the column of a sum metric that marks overflowed sums.
func OverflowColumn(metric string) string { return metric + "_overflow" }

// ExtraColumns lists the columns a view file holds besides t, dimensions
// and metrics, by the metric they belong to: a uniq metric's sketch, a sum
// metric's overflow flag. Their names must not clash with the others.
func ExtraColumns(v *schemas.View) []string {
	var out []string
	for _, m := range v.Metrics {
		switch m.Agg {
		case schemas.Sum:
			out = append(out, OverflowColumn(m.Name))
		case schemas.Uniq:
			out = append(out, HLLColumn(m.Name))
		}
	}
	return out
}

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
// metric (Ints for count, uniq, int64 and decimal fields — a decimal as its
// value × 10^scale; Floats for float fields).
// Valid is false where sum/min/max saw no value (all null) or the sum
// overflowed.
type MetricColumn struct {
	Ints   []int64
	Floats []float64
	Valid  []bool
	HLL    [][]byte // uniq only
	// Overflow (sum only) is true where the sum overflowed, its value then
	// invalid; nil when no row's did.
	Overflow []bool
}

// Len is the number of rows.
func (c *Columns) Len() int { return len(c.T) }

// Row is one (bucket, dimensions) row of a batch view hour.
type Row struct {
	T      int64           // bucket start, Unix µs
	Dims   []schemas.Value // in View.Dimensions order
	Values []schemas.Value // in View.Metrics order: Int for count, uniq, int64 and decimal fields (scaled), Float for float64 fields; Null when no value
	HLL    [][]byte        // in View.Metrics order; the sketch of a uniq metric, nil otherwise
	// Overflow, in View.Metrics order, is true for a sum that overflowed
	// (schemas.IntSum, FloatSum), whose value is then Null; nil when no
	// metric of the row did.
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
		case v.MetricType(m).Kind() == schemas.Decimal:
			fs = append(fs, arrow.Field{Name: m.Name, Type: decimalColumnType(v, m), Nullable: true})
		default:
			fs = append(fs, arrow.Field{Name: m.Name, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
		}
	}
	for _, m := range v.Metrics {
		switch m.Agg {
		case schemas.Sum:
			fs = append(fs, arrow.Field{Name: OverflowColumn(m.Name), Type: arrow.FixedWidthTypes.Boolean})
		case schemas.Uniq:
			fs = append(fs, arrow.Field{Name: HLLColumn(m.Name), Type: arrow.BinaryTypes.Binary})
		}
	}
	md := arrow.NewMetadata([]string{metaFingerprint, metaVersion}, []string{v.Fingerprint(), strconv.FormatInt(version, 10)})
	return arrow.NewSchema(fs, &md)
}

// sumPrecision is the precision of a decimal sum's column: SQL's
// SUM(DECIMAL(P,S)) type, and enough for any int64 of scaled values.
const sumPrecision = 38

// decimalColumnType is the Arrow type of a sum, min or max metric over a
// decimal field: its own type for min and max, DECIMAL(38,S) for sum.
func decimalColumnType(v *schemas.View, m schemas.Metric) *arrow.Decimal128Type {
	t := v.MetricType(m)
	p := int32(t.Precision())
	if m.Agg == schemas.Sum {
		p = sumPrecision
	}
	return &arrow.Decimal128Type{Precision: p, Scale: int32(t.Scale())}
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
// metrics, then the sum metrics' overflow flags and the uniq metrics'
// sketches, in metric order.
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
		switch {
		case v.MetricType(m) == schemas.Float64:
			b := array.NewFloat64Builder(mem)
			b.AppendValues(c.Floats, c.Valid)
			cols = append(cols, b.NewArray())
			b.Release()
		case v.MetricType(m).Kind() == schemas.Decimal:
			b := array.NewDecimal128Builder(mem, decimalColumnType(v, m))
			b.Reserve(len(c.Ints))
			for r, x := range c.Ints {
				if c.Valid != nil && !c.Valid[r] {
					b.UnsafeAppendBoolToBitmap(false)
					continue
				}
				b.UnsafeAppend(decimal128.FromI64(x))
			}
			cols = append(cols, b.NewArray())
			b.Release()
		default:
			b := array.NewInt64Builder(mem)
			b.AppendValues(c.Ints, c.Valid)
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	for i, m := range v.Metrics {
		switch m.Agg {
		case schemas.Sum:
			b := array.NewBooleanBuilder(mem)
			if ov := h.Metrics[i].Overflow; ov != nil {
				b.AppendValues(ov, nil)
			} else {
				b.AppendValues(make([]bool, n), nil)
			}
			cols = append(cols, b.NewArray())
			b.Release()
		case schemas.Uniq:
			b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
			b.AppendValues(h.Metrics[i].HLL, nil)
			cols = append(cols, b.NewArray())
			b.Release()
		}
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
		parquet.WithDictionaryFor(TimeColumn, true),
		// Decimals of up to 18 digits as INT32/INT64, as in the raw lake.
		parquet.WithStoreDecimalAsInteger(true)}
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
		overflows := make([]*array.Boolean, len(v.Metrics))
		for i, m := range v.Metrics {
			mets[i] = col(rec, m.Name)
			if t := v.MetricType(m); t.Kind() == schemas.Decimal && mets[i] != nil {
				ints, err := decimalInts(mets[i], t)
				if err != nil {
					return nil, fmt.Errorf("metric %s: %w", m.Name, err)
				}
				defer ints.Release()
				mets[i] = ints
			}
			switch m.Agg {
			case schemas.Uniq:
				hlls[i], _ = col(rec, HLLColumn(m.Name)).(*array.Binary)
			case schemas.Sum:
				overflows[i], _ = col(rec, OverflowColumn(m.Name)).(*array.Boolean) // nil in files from before it
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
				if o := overflows[i]; o != nil && o.IsValid(r) && o.Value(r) {
					// Rare: a row's flags get their own slice, the
					// others none.
					if row.Overflow == nil {
						row.Overflow = make([]bool, nm)
					}
					row.Overflow[i] = true
					row.Values[i] = schemas.Value{Null: true}
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

// decimalInts narrows a decimal metric's column to its scaled int64s. The
// scale must be the field's: the same digits under another scale are
// another number.
func decimalInts(a arrow.Array, t schemas.Type) (*array.Int64, error) {
	da, ok := a.(*array.Decimal128)
	if !ok || int(da.DataType().(*arrow.Decimal128Type).Scale) != t.Scale() {
		return nil, fmt.Errorf("a %s metric stored as %s", t, a.DataType())
	}
	return schemas.Decimal128Int64s(memory.DefaultAllocator, da)
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

package batch

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
// version, which _state.json also holds.

// TimeColumn is the bucket column of view files.
const TimeColumn = "t"

// HLLColumn is the sketch column of a uniq metric.
func HLLColumn(metric string) string { return metric + "_hll" }

const (
	metaFingerprint = "lambdalake.fingerprint"
	metaVersion     = "lambdalake.version"
)

// ViewRow is one (bucket, dimensions) row of a batch view hour.
type ViewRow struct {
	T      int64           // bucket start, Unix µs
	Dims   []schemas.Value // in View.Dimensions order
	Values []schemas.Value // in View.Metrics order: Int for count, uniq and int64 fields, Float for float64 fields; Null when no value
	HLL    [][]byte        // in View.Metrics order; the sketch of a uniq metric, nil otherwise
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

func metricFloat(v *schemas.View, m schemas.Metric) bool {
	if m.Agg == schemas.Count || m.Agg == schemas.Uniq {
		return false
	}
	f, _ := v.Schema.Field(m.Field)
	return f.Type == schemas.Float64
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
		case metricFloat(v, m):
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

// encodeViewFile writes an hour's rows as a view Parquet file.
func encodeViewFile(v *schemas.View, h *viewHour, version int64) ([]byte, error) {
	mem := memory.DefaultAllocator
	sc := viewArrowSchema(v, version)
	n := h.len()
	cols := make([]arrow.Array, 0, sc.NumFields())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()

	tb := array.NewTimestampBuilder(mem, sc.Field(0).Type.(*arrow.TimestampType))
	tb.Reserve(n)
	for _, t := range h.t {
		tb.UnsafeAppend(arrow.Timestamp(t))
	}
	cols = append(cols, tb.NewArray())
	tb.Release()

	for d, name := range v.Dimensions {
		f, _ := v.Schema.Field(name)
		vals := h.dims[d]
		switch f.Type {
		case schemas.String:
			b := array.NewStringBuilder(mem)
			b.Reserve(n)
			for _, x := range vals {
				if x.Null {
					b.AppendNull()
				} else {
					b.Append(x.Str)
				}
			}
			cols = append(cols, b.NewArray())
			b.Release()
		case schemas.Bool:
			b := array.NewBooleanBuilder(mem)
			b.Reserve(n)
			for _, x := range vals {
				if x.Null {
					b.AppendNull()
				} else {
					b.Append(x.Int != 0)
				}
			}
			cols = append(cols, b.NewArray())
			b.Release()
		default:
			b := array.NewInt64Builder(mem)
			b.Reserve(n)
			for _, x := range vals {
				if x.Null {
					b.AppendNull()
				} else {
					b.Append(x.Int)
				}
			}
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	for i, m := range v.Metrics {
		c := &h.metrics[i]
		if metricFloat(v, m) {
			b := array.NewFloat64Builder(mem)
			b.AppendValues(c.floats, c.valid)
			cols = append(cols, b.NewArray())
			b.Release()
		} else {
			b := array.NewInt64Builder(mem)
			b.AppendValues(c.ints, c.valid)
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	for i, m := range v.Metrics {
		if m.Agg != schemas.Uniq {
			continue
		}
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		b.AppendValues(h.metrics[i].hll, nil)
		cols = append(cols, b.NewArray())
		b.Release()
	}

	rec := array.NewRecordBatch(sc, cols, int64(n))
	defer rec.Release()
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
	w, err := pqarrow.NewFileWriter(sc, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("batch: view file writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("batch: write view rows: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("batch: close view file: %w", err)
	}
	return buf.Bytes(), nil
}

// viewFileInfo is what a view file says about itself.
type viewFileInfo struct {
	Fingerprint string
	Version     int64
}

// decodeViewFile reads a view file into rows. Columns are found by name, so
// a file written before a metric was added reads that metric as null.
func decodeViewFile(ctx context.Context, v *schemas.View, b []byte) ([]ViewRow, viewFileInfo, error) {
	var info viewFileInfo
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		return nil, info, fmt.Errorf("batch: open view file: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, info, fmt.Errorf("batch: open view file: %w", err)
	}
	kv := pf.MetaData().KeyValueMetadata()
	if fp := kv.FindValue(metaFingerprint); fp != nil {
		info.Fingerprint = *fp
	}
	if ver := kv.FindValue(metaVersion); ver != nil {
		info.Version, _ = strconv.ParseInt(*ver, 10, 64)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, info, fmt.Errorf("batch: read view file: %w", err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, tbl.NumRows()+1)
	defer tr.Release()
	rows := make([]ViewRow, 0, tbl.NumRows())
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
			return nil, info, fmt.Errorf("batch: view file has no %s timestamp column", TimeColumn)
		}
		dims := make([]arrow.Array, len(v.Dimensions))
		for d, name := range v.Dimensions {
			if dims[d] = col(rec, name); dims[d] == nil {
				return nil, info, fmt.Errorf("batch: view file has no dimension %q", name)
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
			row := ViewRow{T: int64(ts.Value(r)), Dims: dimVals[r*nd : (r+1)*nd : (r+1)*nd],
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
		return nil, info, fmt.Errorf("batch: read view file: %w", err)
	}
	return rows, info, nil
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

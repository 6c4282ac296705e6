package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/parquet-go/parquet-go"
)

// Columns every raw lake row carries besides the schema's fields (DESIGN §3).
// (_partition, _offset) identifies a record exactly, which is how readers drop
// the overlap a crashed compactor may leave.
const (
	ColPartition  = "_partition"
	ColOffset     = "_offset"
	ColIngestedAt = "_ingested_at"
)

// ArrowType is the Arrow type of a field type. Timestamps are microseconds,
// UTC, as in the Parquet files.
func ArrowType(t Type) arrow.DataType {
	switch t {
	case String:
		return arrow.BinaryTypes.String
	case Int64:
		return arrow.PrimitiveTypes.Int64
	case Float64:
		return arrow.PrimitiveTypes.Float64
	case Bool:
		return arrow.FixedWidthTypes.Boolean
	case Timestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	}
	panic(fmt.Sprintf("schemas: no Arrow type for %v", t))
}

// ArrowSchema is the Arrow schema of the schema's raw lake rows: its fields in
// declaration order, then _partition, _offset and _ingested_at.
func (s *Schema) ArrowSchema() *arrow.Schema {
	fs := make([]arrow.Field, 0, len(s.Fields)+3)
	for _, f := range s.Fields {
		fs = append(fs, arrow.Field{Name: f.Name, Type: ArrowType(f.Type), Nullable: f.Optional})
	}
	fs = append(fs,
		arrow.Field{Name: ColPartition, Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: ColOffset, Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: ColIngestedAt, Type: ArrowType(Timestamp)},
	)
	return arrow.NewSchema(fs, nil)
}

func parquetNode(t Type) parquet.Node {
	switch t {
	case String:
		return parquet.String()
	case Int64:
		return parquet.Int(64)
	case Float64:
		return parquet.Leaf(parquet.DoubleType)
	case Bool:
		return parquet.Leaf(parquet.BooleanType)
	case Timestamp:
		return parquet.Timestamp(parquet.Microsecond)
	}
	panic(fmt.Sprintf("schemas: no Parquet type for %v", t))
}

// RawLayout maps the schema's rows onto the Parquet schema of raw lake files.
// parquet-go orders a group's columns by name, so the layout keeps, for each
// schema field, the leaf column it lands in.
type RawLayout struct {
	Schema *parquet.Schema

	fieldCol                   []int // schema field index → leaf column index
	optional                   []bool
	types                      []Type
	partCol, offCol, ingestCol int
}

// RawLayout builds the layout of the schema's raw lake files (zstd columns).
func (s *Schema) RawLayout() *RawLayout {
	g := parquet.Group{}
	for _, f := range s.Fields {
		n := parquet.Compressed(parquetNode(f.Type), &parquet.Zstd)
		if f.Optional {
			n = parquet.Optional(n)
		}
		g[f.Name] = n
	}
	g[ColPartition] = parquet.Compressed(parquet.Int(32), &parquet.Zstd)
	g[ColOffset] = parquet.Compressed(parquet.Int(64), &parquet.Zstd)
	g[ColIngestedAt] = parquet.Compressed(parquet.Timestamp(parquet.Microsecond), &parquet.Zstd)
	ps := parquet.NewSchema(s.Name, g)

	col := make(map[string]int, len(g))
	for i, f := range ps.Fields() {
		col[f.Name()] = i
	}
	l := &RawLayout{Schema: ps, partCol: col[ColPartition], offCol: col[ColOffset], ingestCol: col[ColIngestedAt]}
	for _, f := range s.Fields {
		l.fieldCol = append(l.fieldCol, col[f.Name])
		l.optional = append(l.optional, f.Optional)
		l.types = append(l.types, f.Type)
	}
	return l
}

// AppendRow appends the Parquet row for one decoded event to buf and returns
// it. The row's strings are referenced, not copied.
func (l *RawLayout) AppendRow(buf parquet.Row, r *Row, partition int32, offset, ingestedMicros int64) parquet.Row {
	n := len(l.fieldCol) + 3
	if cap(buf) < n {
		buf = make(parquet.Row, n)
	}
	buf = buf[:n]
	for i, v := range r.Values {
		c := l.fieldCol[i]
		def := 0
		if l.optional[i] {
			def = 1
			if v.Null {
				buf[c] = parquet.NullValue().Level(0, 0, c)
				continue
			}
		}
		var pv parquet.Value
		switch l.types[i] {
		case String:
			pv = parquet.ByteArrayValue(unsafeBytes(v.Str))
		case Int64, Timestamp:
			pv = parquet.Int64Value(v.Int)
		case Float64:
			pv = parquet.DoubleValue(v.Float)
		case Bool:
			pv = parquet.BooleanValue(v.Int != 0)
		}
		buf[c] = pv.Level(0, def, c)
	}
	buf[l.partCol] = parquet.Int32Value(partition).Level(0, 0, l.partCol)
	buf[l.offCol] = parquet.Int64Value(offset).Level(0, 0, l.offCol)
	buf[l.ingestCol] = parquet.Int64Value(ingestedMicros).Level(0, 0, l.ingestCol)
	return buf
}

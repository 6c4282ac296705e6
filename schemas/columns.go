package schemas

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
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

// ArrowType is the Arrow type of a field type as pqarrow reads it from the
// raw files. Timestamps are microseconds, UTC, as in the Parquet files.
// A decimal(P,S) is Decimal128(P,S), which is what pqarrow makes of a
// Parquet DECIMAL stored as an integer; readers narrow it to the scaled
// int64 the layers compute with (ScaledInt64s).
func ArrowType(t Type) arrow.DataType {
	if t.Kind() == Decimal {
		return &arrow.Decimal128Type{Precision: int32(t.Precision()), Scale: int32(t.Scale())}
	}
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

// ScaledInt64s narrows a column of decimal field type t, read from the
// raw files as pqarrow's Decimal128 (see ArrowType), to the Int64 array of
// its scaled values, the form both layers compute with. Nulls stay nulls.
// A value beyond int64 (a file another writer made with a wider column
// than the type says) is an error, not a wrapped number.
func ScaledInt64s(mem memory.Allocator, a arrow.Array, t Type) (*array.Int64, error) {
	da, ok := a.(*array.Decimal128)
	if !ok || !arrow.TypeEqual(a.DataType(), ArrowType(t)) {
		return nil, fmt.Errorf("schemas: a %s column read as %s", t, a.DataType())
	}
	return Decimal128Int64s(mem, da)
}

// Decimal128Int64s narrows a Decimal128 column of any precision to the
// Int64 array of its unscaled values (the value × 10^scale), the form
// both layers compute with; the caller checks the scale is the one it
// expects. Nulls stay nulls. A value beyond int64 is an error, not a
// wrapped number.
func Decimal128Int64s(mem memory.Allocator, da *array.Decimal128) (*array.Int64, error) {
	scale := da.DataType().(*arrow.Decimal128Type).Scale
	n := da.Len()
	vals := make([]int64, n)
	var valid []bool
	if da.NullN() > 0 {
		valid = make([]bool, n)
	}
	for i := range n {
		if valid != nil {
			if valid[i] = da.IsValid(i); !valid[i] {
				continue
			}
		}
		v := da.Value(i)
		lo := int64(v.LowBits())
		if v.HighBits() != lo>>63 { // not the sign extension of the low word
			return nil, fmt.Errorf("schemas: a %s value does not fit 64 bits: %s", da.DataType(), v.ToString(scale))
		}
		vals[i] = lo
	}
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(vals, valid)
	return b.NewInt64Array(), nil
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

// decimalInt32 says a decimal's Parquet column is INT32: the Parquet
// format asks for INT32 up to 9 digits (parquet-go logs a warning for an
// INT64 one), INT64 up to 18. Readers see DECIMAL(P,S) either way.
func decimalInt32(t Type) bool { return t.Precision() <= 9 }

func parquetNode(t Type) parquet.Node {
	if t.Kind() == Decimal {
		phys := parquet.Int64Type
		if decimalInt32(t) {
			phys = parquet.Int32Type
		}
		return parquet.Decimal(t.Scale(), t.Precision(), phys)
	}
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
		switch typ := l.types[i]; typ.Kind() {
		case String:
			pv = parquet.ByteArrayValue(unsafeBytes(v.Str))
		case Int64, Timestamp:
			pv = parquet.Int64Value(v.Int)
		case Float64:
			pv = parquet.DoubleValue(v.Float)
		case Bool:
			pv = parquet.BooleanValue(v.Int != 0)
		case Decimal:
			pv = decimalValue(typ, v.Int)
		}
		buf[c] = pv.Level(0, def, c)
	}
	buf[l.partCol] = parquet.Int32Value(partition).Level(0, 0, l.partCol)
	buf[l.offCol] = parquet.Int64Value(offset).Level(0, 0, l.offCol)
	buf[l.ingestCol] = parquet.Int64Value(ingestedMicros).Level(0, 0, l.ingestCol)
	return buf
}

// decimalValue is the Parquet value of a scaled decimal of type t. A value
// of a decimal(P≤9,S) field fits an int32: the decoder admits at most P
// digits.
func decimalValue(t Type, n int64) parquet.Value {
	if decimalInt32(t) {
		return parquet.Int32Value(int32(n))
	}
	return parquet.Int64Value(n)
}

// RawBuffer holds raw lake rows column by column, in typed Go values, until
// they are written out in the order the caller chooses (the compactor sorts
// by event time). Appending a row costs one typed store per cell, with no
// parquet.Row; parquet.Values are made only when the rows are written, once
// per cell, straight into the writer's columns. Strings are copied, so the
// decoded Row may be reused at once.
//
// Columns grow by fixed chunks, never by copying, and Release returns the
// chunks to a pool for the next buffer: a compactor fills and drops buffers
// of hundreds of thousands of rows all the time.
//
// A buffer holds at most 2^31 rows and about 2 GiB of string bytes per
// column; callers keep their files far below that.
type RawBuffer struct {
	l         *RawLayout
	partition int32
	n         int
	cols      []rawColumn // schema field order
	offsets   chunks[int64]
	ingested  chunks[int64]
}

// rawColumn is one schema field's values; which member is used depends on
// the field's type.
type rawColumn struct {
	ints   chunks[int64]   // Int64, Timestamp, Bool (0/1), Decimal (scaled); 0 if null
	floats chunks[float64] // Float64; 0 if null
	str    strColumn       // String; "" if null
	nulls  chunks[bool]    // optional fields: the row's value is null
}

// NewBuffer returns an empty buffer for rows of one Kafka partition: the
// _partition column is the same for all of them.
func (l *RawLayout) NewBuffer(partition int32) *RawBuffer {
	return &RawBuffer{l: l, partition: partition, cols: make([]rawColumn, len(l.fieldCol))}
}

// Len is the number of rows buffered.
func (b *RawBuffer) Len() int { return b.n }

// Offsets appends the rows' Kafka offsets, in the order the rows were
// appended, to dst.
func (b *RawBuffer) Offsets(dst []int64) []int64 { return b.offsets.appendTo(dst) }

// Int64s appends the values of an Int64, Timestamp, Bool or Decimal field
// (by schema field index; decimals scaled), in the order the rows were appended, to dst; a null is 0.
func (b *RawBuffer) Int64s(field int, dst []int64) []int64 { return b.cols[field].ints.appendTo(dst) }

// Append adds one decoded event.
func (b *RawBuffer) Append(r *Row, offset, ingestedMicros int64) {
	for i := range b.cols {
		v := &r.Values[i]
		c := &b.cols[i]
		null := false
		if b.l.optional[i] {
			null = v.Null
			c.nulls.add(null)
		}
		switch b.l.types[i].Kind() {
		case String:
			if null {
				c.str.add("")
			} else {
				c.str.add(v.Str)
			}
		case Float64:
			f := v.Float
			if null {
				f = 0
			}
			c.floats.add(f)
		default: // Int64, Timestamp, Bool, Decimal
			n := v.Int
			if null {
				n = 0
			}
			c.ints.add(n)
		}
	}
	b.offsets.add(offset)
	b.ingested.add(ingestedMicros)
	b.n++
}

// Release returns the buffer's memory to the pool. The buffer is empty
// afterwards.
func (b *RawBuffer) Release() {
	for i := range b.cols {
		c := &b.cols[i]
		c.ints.release()
		c.floats.release()
		c.str.release()
		c.nulls.release()
	}
	b.offsets.release()
	b.ingested.release()
	b.n = 0
}

// writeChunk is how many values go to a column writer per call.
const writeChunk = 1024

// WriteColumns writes the rows, in the given order of row indexes, into the
// column writers of a parquet.Writer whose schema has the layout's columns
// (any compression or encoding). The caller then closes the writer.
func (b *RawBuffer) WriteColumns(cws []*parquet.ColumnWriter, order []int32) error {
	if len(cws) != len(b.cols)+3 {
		return fmt.Errorf("schemas: raw buffer: writer has %d columns, layout %d", len(cws), len(b.cols)+3)
	}
	vals := make([]parquet.Value, writeChunk)
	write := func(leaf int, fill func(vals []parquet.Value, rows []int32)) error {
		for start := 0; start < len(order); start += writeChunk {
			rows := order[start:min(start+writeChunk, len(order))]
			v := vals[:len(rows)]
			fill(v, rows)
			if _, err := cws[leaf].WriteRowValues(v); err != nil {
				return fmt.Errorf("schemas: write column %d: %w", leaf, err)
			}
		}
		return nil
	}
	for i := range b.cols {
		c := &b.cols[i]
		leaf := b.l.fieldCol[i]
		var fill func(vals []parquet.Value, rows []int32)
		switch typ := b.l.types[i]; typ.Kind() {
		case String:
			fill = func(vals []parquet.Value, rows []int32) {
				for j, r := range rows {
					vals[j] = parquet.ByteArrayValue(c.str.at(r))
				}
			}
		case Float64:
			fill = func(vals []parquet.Value, rows []int32) {
				for j, r := range rows {
					vals[j] = parquet.DoubleValue(c.floats.at(r))
				}
			}
		case Bool:
			fill = func(vals []parquet.Value, rows []int32) {
				for j, r := range rows {
					vals[j] = parquet.BooleanValue(c.ints.at(r) != 0)
				}
			}
		case Decimal:
			fill = func(vals []parquet.Value, rows []int32) {
				for j, r := range rows {
					vals[j] = decimalValue(typ, c.ints.at(r))
				}
			}
		default: // Int64, Timestamp
			fill = func(vals []parquet.Value, rows []int32) {
				for j, r := range rows {
					vals[j] = parquet.Int64Value(c.ints.at(r))
				}
			}
		}
		// A required column's values need nothing else: parquet-go's leaf
		// buffers read only the value. An optional one's need their
		// definition level, which is what makes a null.
		if b.l.optional[i] {
			values := fill
			fill = func(vals []parquet.Value, rows []int32) {
				values(vals, rows)
				for j, r := range rows {
					if c.nulls.at(r) {
						vals[j] = parquet.NullValue().Level(0, 0, leaf)
					} else {
						vals[j] = vals[j].Level(0, 1, leaf)
					}
				}
			}
		}
		if err := write(leaf, fill); err != nil {
			return err
		}
	}
	part := parquet.Int32Value(b.partition)
	if err := write(b.l.partCol, func(vals []parquet.Value, _ []int32) {
		for j := range vals {
			vals[j] = part
		}
	}); err != nil {
		return err
	}
	if err := write(b.l.offCol, func(vals []parquet.Value, rows []int32) {
		for j, r := range rows {
			vals[j] = parquet.Int64Value(b.offsets.at(r))
		}
	}); err != nil {
		return err
	}
	return write(b.l.ingestCol, func(vals []parquet.Value, rows []int32) {
		for j, r := range rows {
			vals[j] = parquet.Int64Value(b.ingested.at(r))
		}
	})
}

// chunkShift sets the values per chunk of a fixed-width column: 4096, so
// 32 KiB for an int64 column.
const (
	chunkShift = 12
	chunkLen   = 1 << chunkShift
)

// chunks is a growable column of fixed-width values, in pooled chunks.
type chunks[T int64 | float64 | bool] struct {
	c []*[chunkLen]T
	n int
}

// Pools of chunks, one per value type.
var (
	int64Chunks   = sync.Pool{New: func() any { return new([chunkLen]int64) }}
	float64Chunks = sync.Pool{New: func() any { return new([chunkLen]float64) }}
	boolChunks    = sync.Pool{New: func() any { return new([chunkLen]bool) }}
	byteChunks    = sync.Pool{New: func() any { return new([byteChunkLen]byte) }}
)

func chunkPool[T int64 | float64 | bool]() *sync.Pool {
	var zero T
	switch any(zero).(type) {
	case int64:
		return &int64Chunks
	case float64:
		return &float64Chunks
	default:
		return &boolChunks
	}
}

func (c *chunks[T]) add(v T) {
	i := c.n & (chunkLen - 1)
	if i == 0 && c.n>>chunkShift == len(c.c) {
		c.c = append(c.c, chunkPool[T]().Get().(*[chunkLen]T))
	}
	c.c[c.n>>chunkShift][i] = v
	c.n++
}

func (c *chunks[T]) at(i int32) T { return c.c[i>>chunkShift][i&(chunkLen-1)] }

func (c *chunks[T]) appendTo(dst []T) []T {
	dst = slices.Grow(dst, c.n)
	for k, ch := range c.c {
		dst = append(dst, ch[:min(chunkLen, c.n-k*chunkLen)]...)
	}
	return dst
}

func (c *chunks[T]) release() {
	pool := chunkPool[T]()
	for _, ch := range c.c {
		pool.Put(ch)
	}
	c.c, c.n = nil, 0
}

// byteChunkLen is the size of a string column's byte chunks. A string
// never spans two chunks; one of a chunk's length or longer is kept apart.
const (
	byteChunkShift = 16
	byteChunkLen   = 1 << byteChunkShift
)

// strColumn is a growable column of strings. The bytes sit in pooled
// chunks; refs[i] locates row i's: its position over all chunks (chunk k
// starts at k*byteChunkLen) shifted left 16 bits, or'ed with its length.
// 0 is the empty string, bigRef a string kept in big.
type strColumn struct {
	bufs []*[byteChunkLen]byte
	refs chunks[int64]
	end  int64            // position after the last row's bytes
	big  map[int32]string // rows whose string is too long for a chunk (rare)
}

const bigRef = -1

func (c *strColumn) add(s string) {
	n := len(s)
	switch {
	case n == 0:
		c.refs.add(0)
		return
	case n >= byteChunkLen:
		if c.big == nil {
			c.big = map[int32]string{}
		}
		c.big[int32(c.refs.n)] = strings.Clone(s)
		c.refs.add(bigRef)
		return
	}
	k := int(c.end >> byteChunkShift)
	off := int(c.end & (byteChunkLen - 1))
	if k == len(c.bufs) || off+n > byteChunkLen { // start a new chunk
		k, off = len(c.bufs), 0
		c.bufs = append(c.bufs, byteChunks.Get().(*[byteChunkLen]byte))
		c.end = int64(k) << byteChunkShift
	}
	copy(c.bufs[k][off:], s)
	c.refs.add(c.end<<16 | int64(n))
	c.end += int64(n)
}

// at returns row i's bytes, which stay valid until release.
func (c *strColumn) at(i int32) []byte {
	ref := c.refs.at(i)
	if ref <= 0 {
		if ref == bigRef {
			return unsafeBytes(c.big[i])
		}
		return nil
	}
	pos, n := ref>>16, ref&0xffff
	off := pos & (byteChunkLen - 1)
	return c.bufs[pos>>byteChunkShift][off : off+n]
}

func (c *strColumn) release() {
	for _, b := range c.bufs {
		byteChunks.Put(b)
	}
	c.refs.release()
	*c = strColumn{}
}

package recompute

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"golang.org/x/sync/errgroup"

	"github.com/lambdalake/lambdalake/batch/raw"
	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// fileFetchers is how many raw files of one hour are read at once.
const fileFetchers = 4

// hourStats says what computing one hour read.
type hourStats struct {
	files     int
	read      int64 // rows in the files
	overlap   int64 // dropped: an earlier file holds the (partition, offset)
	dupIDs    int64 // dropped: the id was seen at a smaller (partition, offset)
	kept      int64
	misplaced int64
}

// viewColumns lists the schema fields a view reads: its time field, the id
// field (for dedup), dimensions and metric fields. need is indexed by field.
func viewColumns(v *schemas.View) (need []bool) {
	s := v.Schema
	need = make([]bool, len(s.Fields))
	need[s.TimeIndex()] = true
	if s.ID != "" {
		need[s.FieldIndex(s.ID)] = true
	}
	for _, d := range v.Dimensions {
		need[s.FieldIndex(d)] = true
	}
	for _, m := range v.Metrics {
		if m.Field != "" {
			need[s.FieldIndex(m.Field)] = true
		}
	}
	return need
}

// computeHour reads an hour's raw files (plan order) with Arrow, drops
// overlapping offsets and duplicate ids, and aggregates the rest.
func computeHour(ctx context.Context, store lake.Store, v *schemas.View, hour time.Time, plan []raw.FilePlan) (*views.Columns, hourStats, error) {
	var st hourStats
	need := viewColumns(v)
	// Files are fetched and decoded a few at a time: on S3 each is a
	// round trip, and an hour has several.
	chunks := make([]*rawChunk, len(plan))
	recs := make([]arrow.RecordBatch, len(plan))
	defer func() {
		for _, r := range recs {
			if r != nil {
				r.Release()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fileFetchers)
	for i := range plan {
		g.Go(func() error {
			c, rec, err := readRawChunk(gctx, store, v.Schema, need, &plan[i])
			if err != nil {
				return fmt.Errorf("raw file %s: %w", plan[i].Key, err)
			}
			chunks[i], recs[i] = c, rec
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, st, err
	}
	for _, c := range chunks {
		st.files++
		st.read += int64(c.n)
	}
	st.overlap, st.dupIDs = dropDuplicates(v.Schema, chunks, plan)

	agg := newHourAgg(v, hour, int(st.read/2))
	for _, c := range chunks {
		if err := ctx.Err(); err != nil {
			return nil, st, err
		}
		agg.add(c)
	}
	st.kept = st.read - st.overlap - st.dupIDs - agg.misplaced
	st.misplaced = agg.misplaced
	return agg.finish(), st, nil
}

// readRawChunk reads the columns a view needs from one raw file, in one
// record. The object is downloaded whole: raw files are bounded by
// compact.max_file_bytes, and Parquet wants random access.
func readRawChunk(ctx context.Context, store lake.Store, s *schemas.Schema, need []bool, f *raw.FilePlan) (*rawChunk, arrow.RecordBatch, error) {
	b, err := lake.ReadAll(ctx, store, f.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("open: %w", err)
	}
	defer pf.Close()
	idx, err := chunkColumns(pf, s, need)
	if err != nil {
		return nil, nil, err
	}
	rec, err := readRecord(ctx, pf, idx)
	if err != nil {
		return nil, nil, err
	}
	c, err := bindChunk(rec, s, need)
	if err != nil {
		rec.Release()
		return nil, nil, err
	}
	// The record owns the columns; drop the extra references bindChunk
	// took once the record goes, by releasing them with it.
	return c, &chunkRecord{RecordBatch: rec, cols: c.cols}, nil
}

// chunkColumns returns the file's column indexes to read: the fields the
// view needs (a missing optional one reads as null) and the partition and
// offset columns.
func chunkColumns(pf *file.Reader, s *schemas.Schema, need []bool) ([]int, error) {
	psch := pf.MetaData().Schema
	var idx []int
	for i, fl := range s.Fields {
		if !need[i] {
			continue
		}
		ci := psch.ColumnIndexByName(fl.Name)
		if ci < 0 {
			if !fl.Optional {
				return nil, fmt.Errorf("no column %q", fl.Name)
			}
			continue // written before the field existed: reads as null
		}
		idx = append(idx, ci)
	}
	for _, name := range []string{schemas.ColPartition, schemas.ColOffset} {
		ci := psch.ColumnIndexByName(name)
		if ci < 0 {
			return nil, fmt.Errorf("no column %q", name)
		}
		idx = append(idx, ci)
	}
	return idx, nil
}

// readRecord reads the columns idx of the whole file as one record.
func readRecord(ctx context.Context, pf *file.Reader, idx []int) (arrow.RecordBatch, error) {
	// BatchSize 0: one record for the whole file, so every column is one array.
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	nrows := pf.NumRows()
	if nrows == 0 {
		return array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, 0), nil
	}
	rr, err := fr.GetRecordReader(ctx, idx, nil)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	defer rr.Release()
	if !rr.Next() {
		err := rr.Err()
		if err == nil {
			err = fmt.Errorf("no rows")
		}
		return nil, fmt.Errorf("read: %w", err)
	}
	rec := rr.RecordBatch()
	rec.Retain()
	if rec.NumRows() != nrows {
		rec.Release()
		return nil, fmt.Errorf("read: got %d of %d rows in one batch", rec.NumRows(), nrows)
	}
	return rec, nil
}

// bindChunk points a chunk at the record's columns, checking their types,
// and keeps every row. The chunk holds a reference to each field column.
func bindChunk(rec arrow.RecordBatch, s *schemas.Schema, need []bool) (c *rawChunk, err error) {
	nrows := int(rec.NumRows())
	c = &rawChunk{cols: make([]arrow.Array, len(s.Fields)), n: nrows}
	defer func() {
		if err != nil {
			c.releaseCols()
		}
	}()
	sc := rec.Schema()
	get := func(name string) arrow.Array {
		if is := sc.FieldIndices(name); len(is) > 0 {
			return rec.Column(is[0])
		}
		return nil
	}
	badType := func(what string, a arrow.Array) error {
		typ := "missing"
		if a != nil {
			typ = a.DataType().String()
		}
		return fmt.Errorf("column %s has type %s", what, typ)
	}
	if nrows > 0 {
		pa, ok := get(schemas.ColPartition).(*array.Int32)
		if !ok {
			return nil, badType(schemas.ColPartition, get(schemas.ColPartition))
		}
		oa, ok := get(schemas.ColOffset).(*array.Int64)
		if !ok {
			return nil, badType(schemas.ColOffset, get(schemas.ColOffset))
		}
		c.part, c.off = pa.Int32Values(), oa.Int64Values()
	}
	for i, fl := range s.Fields {
		if !need[i] {
			continue
		}
		a := get(fl.Name)
		if a == nil {
			a = array.MakeArrayOfNull(memory.DefaultAllocator, schemas.ArrowType(fl.Type), nrows)
			defer a.Release() // the chunk keeps its own reference below
		}
		if !arrow.TypeEqual(a.DataType(), schemas.ArrowType(fl.Type), arrow.CheckMetadata()) && !sameKind(a.DataType(), fl.Type) {
			return nil, badType(fl.Name, a)
		}
		if fl.Type.Kind() == schemas.Decimal {
			// Decimal128 as read; the aggregation sums scaled int64s.
			ia, err := schemas.ScaledInt64s(memory.DefaultAllocator, a, fl.Type)
			if err != nil {
				return nil, fmt.Errorf("column %s: %w", fl.Name, err)
			}
			c.cols[i] = ia
			continue
		}
		a.Retain()
		c.cols[i] = a
	}
	ts, ok := c.cols[s.TimeIndex()].(*array.Timestamp)
	if !ok {
		return nil, badType(s.Time, c.cols[s.TimeIndex()])
	}
	c.times = ts.TimestampValues()
	if s.ID != "" {
		c.id = c.cols[s.FieldIndex(s.ID)]
	}
	c.keep = make([]bool, nrows)
	for r := range c.keep {
		c.keep[r] = true
	}
	return c, nil
}

// sameKind accepts a timestamp column whatever its time zone annotation
// (files from other writers may omit UTC): values are Unix µs either way.
func sameKind(dt arrow.DataType, t schemas.Type) bool {
	ts, ok := dt.(*arrow.TimestampType)
	return ok && t == schemas.Timestamp && ts.Unit == arrow.Microsecond
}

var _ arrow.RecordBatch = (*chunkRecord)(nil)

// chunkRecord releases the chunk's column references with the record.
type chunkRecord struct {
	arrow.RecordBatch
	cols []arrow.Array
}

func (r *chunkRecord) Release() {
	releaseAll(r.cols)
	r.RecordBatch.Release()
}

// releaseCols drops the chunk's references to its columns.
func (c *rawChunk) releaseCols() { releaseAll(c.cols) }

func releaseAll(cols []arrow.Array) {
	for _, a := range cols {
		if a != nil {
			a.Release()
		}
	}
}

// dropDuplicates clears keep for rows an earlier file already holds (the
// plan's offset ranges) and for repeated event ids, keeping the occurrence
// with the smallest (partition, offset) — exactly, whatever the file order.
func dropDuplicates(s *schemas.Schema, chunks []*rawChunk, plan []raw.FilePlan) (overlap, dup int64) {
	for i, c := range chunks {
		if len(plan[i].Drop) == 0 {
			continue
		}
		for r, o := range c.off {
			if !plan[i].Keep(o) {
				c.keep[r] = false
				overlap++
			}
		}
	}
	if s.ID == "" {
		return overlap, 0
	}
	type loc struct{ chunk, row int32 }
	less := func(a, b loc) bool {
		ca, cb := chunks[a.chunk], chunks[b.chunk]
		pa, pb := ca.part[a.row], cb.part[b.row]
		if pa != pb {
			return pa < pb
		}
		return ca.off[a.row] < cb.off[b.row]
	}
	// settle decides between the row already kept for an id and a new one.
	settle := func(prev *loc, cur loc) {
		dup++
		if less(cur, *prev) {
			chunks[prev.chunk].keep[prev.row] = false
			*prev = cur
			return
		}
		chunks[cur.chunk].keep[cur.row] = false
	}
	total := 0
	for _, c := range chunks {
		total += c.n
	}
	if _, ok := firstID(chunks).(*array.String); ok || firstID(chunks) == nil {
		// The id strings point into the chunks' buffers, alive until we return.
		seen := newStrIntern(total, false)
		locs := make([]loc, 0, total)
		for ci, c := range chunks {
			sa, ok := c.id.(*array.String)
			if !ok {
				continue
			}
			col := newStringColumn(sa)
			for r := 0; r < c.n; r++ {
				if !c.keep[r] {
					continue
				}
				cur := loc{int32(ci), int32(r)}
				if id, added := seen.id(col.at(int32(r))); added {
					locs = append(locs, cur)
				} else {
					settle(&locs[id], cur)
				}
			}
		}
		return overlap, dup
	}
	seen := make(map[int64]loc, total)
	for ci, c := range chunks {
		if c.n == 0 {
			continue
		}
		get := int64Of(c.id)
		for r := 0; r < c.n; r++ {
			if !c.keep[r] {
				continue
			}
			cur := loc{int32(ci), int32(r)}
			id := get(r)
			if prev, ok := seen[id]; ok {
				settle(&prev, cur)
				seen[id] = prev
				continue
			}
			seen[id] = cur
		}
	}
	return overlap, dup
}

func firstID(chunks []*rawChunk) arrow.Array {
	for _, c := range chunks {
		if c.n > 0 {
			return c.id
		}
	}
	return nil
}

package raw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lambdalake/lambdalake/lake"
	"github.com/lambdalake/lambdalake/schemas"
)

// Columns locates the lake columns in the rows ReadHour returns.
type Columns struct {
	Partition, Offset, IngestedAt int
	Fields                        []int // schema field index → column index
}

// ColumnsOf returns where each column of the schema's raw rows is.
func ColumnsOf(s *schemas.Schema) Columns {
	ps := s.RawLayout().Schema
	col := func(name string) int {
		leaf, ok := ps.Lookup(name)
		if !ok {
			panic("raw: raw layout has no column " + name)
		}
		return leaf.ColumnIndex
	}
	c := Columns{Partition: col(schemas.ColPartition), Offset: col(schemas.ColOffset), IngestedAt: col(schemas.ColIngestedAt)}
	for _, f := range s.Fields {
		c.Fields = append(c.Fields, col(f.Name))
	}
	return c
}

// ReadHour reads the rows of an hour of the raw lake, each record once:
// rows that an earlier file already holds are dropped (see FilePlan).
// Rows come in the schema's raw layout (see ColumnsOf) and are only valid
// during the call to fn. This parquet-go reader serves merge and tests;
// recompute reads the same plan with Arrow.
//
// A concurrent Merge may delete a planned file after writing the file
// that replaces it; the read then fails with an error wrapping
// lake.ErrNotExist, never counting a record twice, and a new read (with a
// new plan) sees the merged file.
func ReadHour(ctx context.Context, store lake.Store, s *schemas.Schema, hour time.Time, fn func(parquet.Row) error) error {
	plan, _, err := PlanHour(ctx, store, s.Name, hour)
	if err != nil {
		return err
	}
	layout := s.RawLayout()
	for i := range plan {
		if err := ReadFile(ctx, store, layout, &plan[i], fn); err != nil {
			return err
		}
	}
	return nil
}

// ReadFile reads the rows of one planned raw file that the plan keeps, in
// the file's order, through layout (see ReadHour).
func ReadFile(ctx context.Context, store lake.Store, layout *schemas.RawLayout, f *FilePlan, fn func(parquet.Row) error) error {
	leaf, ok := layout.Schema.Lookup(schemas.ColOffset)
	if !ok {
		panic("raw: raw layout has no column " + schemas.ColOffset)
	}
	offCol := leaf.ColumnIndex
	b, err := lake.ReadAll(ctx, store, f.Key)
	if err != nil {
		return fmt.Errorf("raw: read file: %w", err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return fmt.Errorf("raw: open %s: %w", f.Key, err)
	}
	// Reading through the current layout converts files written before a
	// compatible schema change (a new optional field reads as null).
	r := parquet.NewReader(pf, layout.Schema)
	defer r.Close()
	rows := make([]parquet.Row, 256)
	for {
		n, err := r.ReadRows(rows)
		for _, row := range rows[:n] {
			if !f.Keep(row[offCol].Int64()) {
				continue
			}
			if err := fn(row); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("raw: read rows of %s: %w", f.Key, err)
		}
	}
}

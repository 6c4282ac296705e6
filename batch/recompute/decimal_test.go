package recompute

import (
	"context"
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/batch/views"
	"github.com/lambdalake/lambdalake/schemas"
)

// Decimal fields are Parquet DECIMAL in the raw files, which pqarrow reads
// as Decimal128; the raw reader narrows them to scaled int64s, so the
// aggregation is exact integer arithmetic: counts, sums, min, max and
// exact uniq (its sketch built from the decimal's exact text) equal an
// independent reference, for an INT64 and an INT32 (P ≤ 9) column, nulls
// and a decimal id (duplicates dropped by it) included.
func TestDecimalColumnsAggregateExactly(t *testing.T) {
	dec := func(p, s int) schemas.Type {
		typ, err := schemas.DecimalType(p, s)
		if err != nil {
			t.Fatal(err)
		}
		return typ
	}
	s, err := schemas.NewSchema("money", "money", "ts", "id", []schemas.Field{
		{Name: "id", Type: dec(12, 0)},
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String},
		{Name: "amount", Type: dec(18, 2)},
		{Name: "rate", Type: dec(9, 3), Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.View{Name: "money", Schema: s, Granularity: 5 * time.Minute, Dimensions: []string{"tenant"},
		Metrics: []schemas.Metric{
			{Name: "n", Agg: schemas.Count},
			{Name: "revenue", Agg: schemas.Sum, Field: "amount"},
			{Name: "biggest", Agg: schemas.Max, Field: "amount"},
			{Name: "smallest", Agg: schemas.Min, Field: "amount"},
			{Name: "amounts", Agg: schemas.Uniq, Field: "amount"},
			{Name: "rates", Agg: schemas.Uniq, Field: "rate"},
			{Name: "rate_sum", Agg: schemas.Sum, Field: "rate"},
			{Name: "rate_min", Agg: schemas.Min, Field: "rate"},
		}}
	store := rcDirStore(t)
	recs := rcLog(t, s, rcHour(0), rcHour(2), 4000, 2, 3, map[string]int{"tenant": 3}, nil)
	rcWriteFiles(t, store, s, s.Topic, recs, 400, 3)
	rcAssertDuplicates(t, s, recs, rcHour(0), rcHour(1))
	var got []views.Row
	for _, h := range []time.Time{rcHour(0), rcHour(1)} {
		rows, err := ComputeHourRows(context.Background(), store, v, h)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			t.Fatalf("hour %v: no rows", h)
		}
		got = append(got, rows...)
	}
	rcCompare(t, v, got, rcReference(t, v, recs, nil))
}

package serving

import (
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/schemas"
)

// testSchema is an orders schema on topic.
func testSchema(t testing.TB, topic string) *schemas.Schema {
	t.Helper()
	s, err := schemas.NewSchema("orders", topic, "ts", "order_id", []schemas.Field{
		{Name: "order_id", Type: schemas.String},
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "tenant", Type: schemas.String},
		{Name: "country", Type: schemas.String},
		{Name: "user_id", Type: schemas.String},
		{Name: "amount", Type: schemas.Float64},
		{Name: "qty", Type: schemas.Int64},
		{Name: "coupon", Type: schemas.String, Optional: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testMetrics = []schemas.Metric{
	{Name: "orders", Agg: schemas.Count},
	{Name: "revenue", Agg: schemas.Sum, Field: "amount"},
	{Name: "biggest", Agg: schemas.Max, Field: "amount"},
	{Name: "smallest", Agg: schemas.Min, Field: "amount"},
	{Name: "buyers", Agg: schemas.Uniq, Field: "user_id"},
	{Name: "qty", Agg: schemas.Sum, Field: "qty"},
}

func testView(name string, s *schemas.Schema) *schemas.View {
	return &schemas.View{Name: name, Schema: s, Granularity: time.Minute, Dimensions: []string{"tenant", "country"},
		Metrics: testMetrics, HotRetention: 48 * time.Hour, Lateness: 5 * time.Minute}
}

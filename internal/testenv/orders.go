package testenv

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/schemas"
)

// OrdersSchema is the orders schema the tests share, on topic: the fields
// of the example config's orders, with an int64 field (qty) beside the
// float64 amount so that every aggregation runs over both numeric types.
func OrdersSchema(t testing.TB, topic string) *schemas.Schema {
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

// OrdersMetrics are metrics of every aggregation over OrdersSchema's
// numeric types, and a uniq.
func OrdersMetrics() []schemas.Metric {
	return []schemas.Metric{
		{Name: "orders", Agg: schemas.Count},
		{Name: "revenue", Agg: schemas.Sum, Field: "amount"},
		{Name: "biggest", Agg: schemas.Max, Field: "amount"},
		{Name: "smallest", Agg: schemas.Min, Field: "amount"},
		{Name: "buyers", Agg: schemas.Uniq, Field: "user_id"},
		{Name: "qty", Agg: schemas.Sum, Field: "qty"},
		{Name: "qty_min", Agg: schemas.Min, Field: "qty"},
		{Name: "qty_max", Agg: schemas.Max, Field: "qty"},
	}
}

// RedisClient is a client of the local stack's single Redis, closed when t
// ends. Tests that should run over the cluster too take RedisSetups.
func RedisClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{RedisAddr(t)}})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

package serving

import (
	"testing"
	"time"

	"github.com/lambdalake/lambdalake/internal/testenv"
	"github.com/lambdalake/lambdalake/schemas"
)

// testSchema is the shared orders schema on topic.
func testSchema(t testing.TB, topic string) *schemas.Schema { return testenv.OrdersSchema(t, topic) }

// testMetrics are the serving tests' metrics: the fakes' rows carry these
// six values, in this order.
var testMetrics = testenv.OrdersMetrics()[:6]

func testView(name string, s *schemas.Schema) *schemas.View {
	return &schemas.View{Name: name, Schema: s, Granularity: time.Minute, Dimensions: []string{"tenant", "country"},
		Metrics: testMetrics, HotRetention: 48 * time.Hour, Lateness: 5 * time.Minute}
}

package lake

import (
	"testing"
	"time"
)

func TestLayoutKeys(t *testing.T) {
	hour := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	tests := []struct{ got, want string }{
		{HourPath(time.Date(2026, 11, 27, 9, 59, 59, 0, time.FixedZone("x", 3600))), "dt=2026-11-27/hr=08"},
		{RawFile{Schema: "orders", Hour: hour, Topic: "orders", Partition: 3, First: 10, Last: 99}.Key(),
			"raw/orders/dt=2026-11-27/hr=09/orders-3-00000000000000000010-00000000000000000099.parquet"},
		{CheckpointKey("g", "orders", 2), "_checkpoints/g/orders/2.json"},
		{DirtyKey("orders", hour), "_dirty/orders/dt=2026-11-27/hr=09"},
		{DeadletterKey("orders", hour, "orders", 1, 5, 7), "deadletter/orders/dt=2026-11-27/hr=09/orders-1-00000000000000000005-00000000000000000007.parquet"},
		{ViewKey("revenue", hour), "views/revenue/dt=2026-11-27/hr=09/view.parquet"},
		{ViewStateKey("revenue"), "views/revenue/_state.json"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

func TestParseRawKey(t *testing.T) {
	hour := time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC)
	for _, f := range []RawFile{
		{Schema: "orders", Hour: hour, Topic: "orders", Partition: 0, First: 0, Last: 0},
		{Schema: "pv", Hour: hour, Topic: "my-dashed-topic", Partition: 12, First: 1 << 40, Last: 1<<40 + 5},
	} {
		got, err := ParseRawKey(f.Key())
		if err != nil {
			t.Fatal(err)
		}
		if got != f {
			t.Errorf("ParseRawKey(%s) = %+v, want %+v", f.Key(), got, f)
		}
	}
	for _, bad := range []string{
		"raw/orders/dt=2026-01-02/hr=23/orders-1-2.parquet",
		"raw/orders/dt=2026-01-02/hr=25/orders-1-2-3.parquet",
		"raw/orders/dt=2026-01-02/hr=23/orders-1-9-3.parquet",
		"raw/orders/dt=2026-01-02/hr=23/orders-1-2-3.json",
		"views/orders/dt=2026-01-02/hr=23/orders-1-2-3.parquet",
		"raw/orders/orders-1-2-3.parquet",
	} {
		if _, err := ParseRawKey(bad); err == nil {
			t.Errorf("ParseRawKey(%s) accepted", bad)
		}
	}
}

func TestPartitionHour(t *testing.T) {
	h, ok := PartitionHour("views/revenue/dt=2026-11-27/hr=09/view.parquet")
	if !ok || !h.Equal(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("PartitionHour = %v %v", h, ok)
	}
	if _, ok := PartitionHour("views/revenue/_state.json"); ok {
		t.Error("PartitionHour of a state file")
	}
	s, h, err := ParseDirtyKey(DirtyKey("orders", time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)))
	if err != nil || s != "orders" || h.Hour() != 9 {
		t.Errorf("ParseDirtyKey = %s %v %v", s, h, err)
	}
}

package schemas

import (
	"fmt"
	"time"
)

// The duplicate rule both layers share (DESIGN §2). Batch recompute drops
// duplicate ids per raw hour: the raw lake is partitioned by event hour
// (UTC), and within one hour a row whose id field holds the same value as
// a row at a smaller (partition, offset) is dropped — whatever its other
// fields say. So two events of a schema with an id are copies of one event
// when their ids are equal and their event times fall in the same UTC
// hour; the copy read first is the event. Ids are compared as values
// (strings as they are, numbers by value), which is comparing their
// AppendKey text: the Kafka key keyed producers send, so every copy of an
// event lands in one partition, where the speed layer can see it again.

// MaxDedupWindow bounds schemas.NAME.dedup_window: the speed layer keeps
// the ids of a window in memory and reads it back from Kafka after every
// restart, so a window of days would cost both; beyond it, the batch
// layer's figures replace the speed layer's anyway.
const MaxDedupWindow = 7 * 24 * time.Hour

// CheckDedupWindow says what is wrong with d as the schema's dedup_window,
// or nil: 0 is off; a window needs the schema's id field and is at most
// MaxDedupWindow.
func (s *Schema) CheckDedupWindow(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("must not be negative")
	case d == 0:
		return nil
	case s.ID == "":
		return fmt.Errorf("needs the schema's id field (schemas.%s.id): duplicates are recognised by id", s.Name)
	case d > MaxDedupWindow:
		return fmt.Errorf("%s is too long: at most %s", d, MaxDedupWindow)
	}
	return nil
}

// AppendDedupKey appends the id text of a decoded event to dst (AppendKey)
// and returns it with the start of the event's UTC hour (Unix µs): two
// events are copies of one event exactly when both are equal (SameEvent).
// ok is false when s has no id field.
func (s *Schema) AppendDedupKey(dst []byte, r *Row) (key []byte, hour int64, ok bool) {
	key, ok = s.AppendKey(dst, r)
	if !ok {
		return dst, 0, false
	}
	return key, floorMicros(s.TimeMicros(r), hourMicros), true
}

// SameEvent reports whether two decoded events of s are copies of one
// event under the batch layer's duplicate rule (above); never for a schema
// without an id.
func (s *Schema) SameEvent(a, b *Row) bool {
	ka, ha, ok := s.AppendDedupKey(nil, a)
	if !ok {
		return false
	}
	kb, hb, _ := s.AppendDedupKey(nil, b)
	return ha == hb && string(ka) == string(kb)
}

package schemas

import "time"

// DefaultMaxFuture is how far ahead of the wall clock an event time may be
// when a schema does not say (schemas.NAME.max_future).
const DefaultMaxFuture = 15 * time.Minute

// Verdict is what the admission rule says of one event time. Both layers
// judge every decoded event with Schema.Admit before anything else: the
// compactor dead-letters what is not admitted, with Verdict.String() as the
// reason, and the speed layer skips it under the same reason, so neither
// layer ever counts an event the other refuses.
type Verdict uint8

const (
	// Admitted: the event time lies in the schema's window.
	Admitted Verdict = iota
	// Future: more than max_future ahead of the wall clock. A producer
	// with a wrong clock must not close hours (or move B) for everyone.
	Future
	// Expired: in an hour the raw lake's retention may already have
	// deleted from (it ended at or before now − retention). Such an hour
	// is sealed: its view hour is never rebuilt from what is left, so an
	// event for it could only make the view hour wrong.
	Expired
)

var verdictNames = [...]string{Admitted: "admitted", Future: "future", Expired: "expired"}

// String is the reason both layers report: "future" and "expired" are the
// dead-letter reason and the speed layer's skip reason.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "Verdict(?)"
}

// Admit judges an event time (Unix µs) against the wall clock now (Unix µs):
// the window of acceptable event times is (now − retention, rounded to the
// start of the hour it seals, now + max_future].
func (s *Schema) Admit(eventMicros, nowMicros int64) Verdict {
	if eventMicros > nowMicros+s.maxFuture().Microseconds() {
		return Future
	}
	if s.Retention > 0 {
		hourEnd := floorMicros(eventMicros, hourMicros) + hourMicros
		if hourEnd <= nowMicros-s.Retention.Microseconds() {
			return Expired
		}
	}
	return Admitted
}

// Sealed reports whether the hour starting at hour (Unix µs, on the hour) is
// past the raw lake's retention at now: raw data of it may be deleted, so
// no layer may change its figures any more. Admit returns Expired for
// exactly the events of sealed hours.
func (s *Schema) Sealed(hour, nowMicros int64) bool {
	return s.Retention > 0 && hour+hourMicros <= nowMicros-s.Retention.Microseconds()
}

func (s *Schema) maxFuture() time.Duration {
	if s.MaxFuture > 0 {
		return s.MaxFuture
	}
	return DefaultMaxFuture
}

const hourMicros = int64(time.Hour / time.Microsecond)

// floorMicros floors t (Unix µs) to a multiple of step (µs) since the epoch,
// also for times before 1970.
func floorMicros(t, step int64) int64 {
	return t - ((t%step)+step)%step
}

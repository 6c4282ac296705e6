// Package e2e holds the acceptance tests of the whole system on the real
// local stack (Kafka, Redis, LocalStack S3), driven through its binary and
// its HTTP API: issue 8's (history, live traffic, bad records and
// crashes), the scale-out one (several processes per role, killed with
// work in flight), and issue 13's reproductions (hostile_test.go: future
// event times, overflowing sums, a late event for a sealed hour, a stale
// runner, and single hostile inputs through the Events API). It has no
// code of its own.
package e2e

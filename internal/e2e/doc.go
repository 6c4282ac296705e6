// Package e2e holds the acceptance test of issue 8: the whole system on the
// real local stack (Kafka, Redis, LocalStack S3), driven through its
// binary and its HTTP API, with history, live traffic, bad records and
// crashes. It has no code of its own.
package e2e

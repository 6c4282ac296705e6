// Package views is the batch views' lake format and its reading (DESIGN §2
// and §3): views/{view}/dt=/hr=/view.parquet, one hour of a view at its
// grain, and views/{view}/_state.json, which records the view's
// fingerprint, its boundary B and every computed hour's version.
//
// Recompute (package recompute) writes both; the serving layer reads them
// through Reader, which serves [from, B) from an in-memory cache of decoded
// hours (immutable per version), and the cold path encodes its rows through
// the same file format so cold rows equal batch rows. Nothing here talks to
// Kafka.
//
// A sum metric's column is null where the sum overflowed (the rule of
// schemas.IntSum and FloatSum), with its {metric}_overflow boolean column
// true, so a reader — DuckDB as much as Row.Overflow — tells an overflowed
// sum from one of no values; files written before the column read as not
// overflowed. _state.json is written conditionally (WriteState: If-Match
// on the version read, If-None-Match on create), so a recompute runner that
// lost its lease cannot overwrite its successor's state. Each hour records
// the definition it was computed with and whether it is sealed; Reader
// refuses a sealed hour computed under another definition
// (ErrSealedDefinition) instead of serving wrong numbers.
//
// Metrics over decimal(P,S) fields are Parquet DECIMAL columns (min/max
// DECIMAL(P,S), sum DECIMAL(38,S)), read back to the scaled int64s both
// layers compute with (see file.go).
package views

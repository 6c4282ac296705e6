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
package views

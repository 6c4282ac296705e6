// Package schemas holds the one definition that both layers run: the event
// schemas and the views declared over them (DESIGN §1), and the decoder that
// turns one JSON event from Kafka into a typed Row.
//
// Everything downstream starts here: the speed layer decodes with Decoder and
// buckets by Row.Time; the compactor writes Rows to Parquet with the schema's
// ParquetSchema; recompute reads them back with the schema's ArrowSchema and
// aggregates by the View. A View's Fingerprint changes exactly when its
// definition does, which is what tells both layers to rebuild.
//
// It also holds, once, the rules the two layers must apply identically for
// their figures to merge at the boundary B (rules.go): flooring a time to a
// step (Floor, View.Bucket), a metric's value type (View.MetricType), the
// order min and max keep (Replaces), the order of dimension values
// (CompareValues), the text a uniq value is hashed under (UniqElement), and
// reading a where value into a typed dimension value (ParseDimValue); and,
// in admission.go and sum.go, which event times are admitted and when a sum
// overflows. decimal.go holds the decimal(P,S) type (exact, scaled int64
// values, parsed without float64, summed as IntSum) and its one printer,
// AppendDecimal, which answers and uniq elements use; key.go the Kafka record key producers
// give an event (its id), so that every copy of it meets in one partition.
// internal/agreement feeds the same events to both layers' aggregations and
// checks their cells are equal.
package schemas

// Package schemas holds the one definition that both layers run: the event
// schemas and the views declared over them (DESIGN §1), and the decoder that
// turns one JSON event from Kafka into a typed Row.
//
// Everything downstream starts here: the speed layer decodes with Decoder and
// buckets by Row.Time; the compactor writes Rows to Parquet with the schema's
// ParquetSchema; recompute reads them back with the schema's ArrowSchema and
// aggregates by the View. A View's Fingerprint changes exactly when its
// definition does, which is what tells both layers to rebuild.
package schemas

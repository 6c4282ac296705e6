// Package lake is the object store under the batch layer (DESIGN §3): the raw
// Parquet files the compactor writes, its checkpoints, dirty-hour markers,
// dead letters, and the view files recompute publishes.
//
// Store is deliberately small (put, get, list, delete) so that the same
// code runs on S3 (S3Store, on aws-sdk-go-v2, LocalStack included) and on a
// local folder (DirStore, for dev and tests). Every Put is atomic: a reader
// sees the old object or the new one, never part of one. layout.go holds
// the key names of DESIGN §3, so no other package formats a key by hand.
package lake

// Package lake is the object store under the batch layer (DESIGN §3): the raw
// Parquet files the compactor writes, its checkpoints, dirty-hour markers,
// dead letters, and the view files recompute publishes.
//
// Store is deliberately small (put, get, list, delete) so that the same
// code runs on S3 (S3Store, on aws-sdk-go-v2, LocalStack included) and on a
// local folder (DirStore, for dev and tests). Every Put is atomic: a reader
// sees the old object or the new one, never part of one. layout.go holds
// the key names of DESIGN §3, so no other package formats a key by hand.
//
// ConditionalStore adds the writes of DESIGN §2's fenced objects
// (_state.json, checkpoints), which both stores implement:
//
//	body, etag, err := s.ReadWithETag(ctx, key) // ErrNotExist: etag stays ""
//	...                                        // decide the new content
//	etag, err = lake.PutVersion(ctx, s, key, newBody, etag)
//	if errors.Is(err, lake.ErrPreconditionFailed) {
//		// someone else wrote key since it was read: reread, or give up
//	}
//
// PutVersion is PutIfMatch (replace only if the ETag is still the one read;
// S3's If-Match) or, with no ETag, PutIfAbsent (create only if missing; S3's
// If-None-Match: *). Of writers racing on one ETag exactly one wins; the
// others get ErrPreconditionFailed and nothing of theirs is written. On S3
// the condition is S3's own; a 412 is never retried, a 409
// ConditionalRequestConflict is, and a 412 that follows a retry counts as a
// success when the object holds exactly the bytes sent (the earlier attempt
// landed). DirStore checks and renames under a flock, between processes too.
package lake

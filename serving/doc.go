// Package serving is the HTTP face of lambdalake (DESIGN §4): the query
// endpoint that merges the batch views and the speed layer at the boundary
// B, the Events API that produces to Kafka, the views and job listings,
// health, readiness, metrics and the OpenAPI document (openapi.yaml, checked
// against the routes and parameter parsers by a test). It holds no state of
// its own beyond caches, so it scales by replicas.
//
// # A query
//
// GET /v1/views/{view}/query parses its parameters once into typed values
// (where values with schemas.ParseDimValue, the rule both layers share)
// and hands those to both layers. It reads B once (boundary.Read: the Redis
// mirror batch publishes; the lake's _state.json when Redis has none; none
// at all: speed answers everything). [from, B) comes from batch view hours
// (views.Reader, decoded hours cached by version), [B, to) from the
// speed layer through its API (speed.Reader; serving reads none of speed's
// keys itself). If Redis says B is later than the cached lake state, the
// state is reread (recompute writes _state.json before it publishes B), so
// no hour falls between the two.
//
// from is floored and to ceiled to the step (epoch-aligned, as the speed
// layer rolls up), so every output bucket is whole; the answer echoes the
// aligned range. Rows are sorted by t then group_by values; buckets without
// data are omitted. Times are RFC 3339 UTC.
//
// Merge: count and sum add, min and max compare. uniq is exact where an
// output row is exactly one batch row (the stored grain, or a rollup that
// happens to hold a single row); otherwise it is the estimate of the union
// of HyperLogLog sketches: batch rows carry Redis-format sketches, the
// speed side is PFCOUNT over its cells, and in the one step that straddles
// the start of the speed range (B not on the step grid, e.g. step=1d) the
// speed cells' sketches are read (speed.Reader.Sketches) and unioned with
// the batch ones. The answer's "approximate" lists the uniq metrics with at
// least one estimated figure.
//
// Decimals: a sum, min or max over a decimal(P,S) field is merged as the
// scaled int64 both layers hand over (sums under schemas.IntSum's rule)
// and printed with exactly S decimals by schemas.AppendDecimal: a JSON
// number with those digits in json and ndjson (25209252.48, never through
// float64), the same text in csv.
//
// # Gaps: never a silent zero
//
// An empty bucket in [B, to) is normally just a minute without events. It
// is lost data instead when
//   - the bucket has expired from Redis: bucket end + hot_retention is past
//     (with one granularity of margin for keys expiring while we read); or
//   - the speed layer is not keeping the view whole (speed.Reader.Whole is
//     false: Redis lost its data, no worker ever ran, a worker with another
//     definition wrote it, or a rebuild is under way). Then everything in
//     [B, now) is lost.
//
// Also lost: [lake B, B) when Redis holds a B later than the lake's (only
// if someone set it by hand). Lost ranges of at most http.cold_max_hours
// hours (default 6) are computed from the raw lake (recompute.ComputeHourRows:
// the recompute path without writing) and reported under sources.cold;
// longer ones are listed under "gaps" and their buckets are absent from
// the rows. A cold answer is as fresh as the raw lake (the compactor's
// max_file_age), and cold hours are kept 10s.
//
// # Sharing work
//
// Concurrent queries with the same view, aligned range, step, group_by,
// where and B share one computation (singleflight) whatever their format
// and metrics: an answer holds every metric, each request prints its own.
// It runs on its own deadline so one client leaving does not fail the
// others. When the step divides an hour, each batch hour is rolled up on
// its own and that rollup is cached by the hour's version, so a query
// recomputes only its partial first hour and the speed part. Before any
// of it, the answer's rows are estimated (estimate.go) and a query over
// http.max_rows is refused (413) with the estimate.
//
// A batch hour is rolled up from a cube (cube.go): the hour at the
// coarsest grain that divides the step (1h, 15m, 5m or the view's), by the
// dimensions the query's group_by and where name, built once per hour
// version, grain and dimension subset; so a new shape costs a pass over
// the cube's cells, not over every view row of the hour. Only a query by
// every dimension at the view's grain reads the view rows.
//
// The caches are bounded in bytes, least recently used first (cache.go):
// rollups by half of http.rollup_cache_bytes, cubes by the other half,
// encoded answers by http.cache_bytes.
// The encoded answer is kept for http.cache_ttl (default 1s; 0: no cache)
// and only while B is unchanged (B is part of the key: a moved B is a miss,
// computed at once). Past cache_ttl the previous answer is still served
// while one background refresh computes the next (stale-while-revalidate),
// for at most http.timeout more. So the speed part of an answer is at most
// cache_ttl plus one computation old; its batch part is exact for its B.
//
// # Errors and limits
//
// Every error is JSON {"error", "param"}: 400 bad parameter, 401 missing,
// unknown or invalid token, 403 missing scope or a where the token's
// filters forbid, 404 unknown view, schema or route, 408 a body slower
// than http.body_timeout, 413 range longer than http.max_range, more steps
// or rows than http.max_rows, or a body over http.max_body, 429 a token
// over its rate or its share of query slots, 503 a dependency failed or
// the server is full, 504 longer than http.timeout. Every 429 and 503
// carries Retry-After. Bad input is always refused before any dependency
// is touched, so it never yields a 5xx; a panic is recovered, logged and
// answered 500 as a last resort. A dependency's error text (hosts, ports)
// reaches the log, and admin callers only: /readyz says "down".
//
// Parameters are read from the raw query string (rawquery.go): a bad
// escape, a ';', an empty value, a repeated parameter that does not repeat
// or an unknown name is a 400 naming it, where r.URL.Query() would drop
// the pair and answer the default.
//
// Hostile clients are bounded (limits.go, ratelimit.go, server.go): read,
// body, write and idle timeouts; a token bucket per token with
// X-RateLimit-* headers; at most http.max_queries queries at once and
// http.max_token_queries per token; at most http.max_cold raw-lake hours.
//
// # Tokens
//
// Authorization: Bearer <token>, with scopes read:views (views, query),
// write:events (Events API), admin (everything, job history). Static
// tokens are compared as SHA-256 digests with crypto/subtle against every
// configured token; signed JWTs (jwt.go: HS256 with a secret, or RS256,
// ES256, EdDSA with a public key) carry sub, exp, scopes, filters and a
// rate. A token's filters ({tenant: t07}, tenant.go) are added to every
// query it makes as where, and a where for another value is a 403: a team
// can put the endpoint in front of its own customers. /healthz, /readyz,
// /metrics and /v1/openapi.yaml are public. APIConfig.AuthDisabled (only
// `lambdalake dev`) serves without tokens.
//
// # Events API
//
// POST /v1/events?schema=S takes NDJSON; each non-blank line is decoded
// with the schema; valid lines go to the schema's topic and the answer
// comes after Kafka acknowledged them (acks=all). The answer counts the
// accepted lines and lists rejected ones by 1-based line number with the
// reason: not decodable (invalid UTF-8 included, as the compactor and the
// speed layer judge it), longer than one Kafka message, or another value
// than the token's filters. strict=true produces nothing unless every line
// is valid (400). A body where no line is valid is a 400 too.
package serving

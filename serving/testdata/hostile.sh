#!/usr/bin/env bash
# Hostile and malformed requests against a running lambdalake HTTP API
# (issue 17). Every case must get a 4xx or its documented success: never a
# 5xx, never a hang. One line per case; exit status 1 if any case fails.
#
#   BASE=http://127.0.0.1:8080 VIEW=revenue SCHEMA=orders \
#   READ_TOKEN=... WRITE_TOKEN=... ADMIN_TOKEN=... \
#   TENANT_TOKEN=...  (read:views, filters {tenant: $TENANT}) TENANT=t07 \
#   LIMITED_TOKEN=... (read:views, rate 1/s, burst 2) \
#   JWT=...           (a valid HS256 JWT: read:views, filters {tenant: $TENANT}) \
#   BODY_TIMEOUT=2    (http.body_timeout of the server, seconds) \
#   (the server's http.max_rows must be under 44640, 31 days of minutes)
#   HEADER_TIMEOUT=2  (http.read_header_timeout, seconds) \
#   IDLE_TIMEOUT=3    (http.idle_timeout, seconds) \
#   bash serving/testdata/hostile.sh
#
# Loopback only: BASE must be a local address.
set -u
: "${BASE:?}" "${VIEW:?}" "${SCHEMA:?}" "${READ_TOKEN:?}" "${WRITE_TOKEN:?}" "${ADMIN_TOKEN:?}"
: "${TENANT_TOKEN:?}" "${TENANT:?}" "${LIMITED_TOKEN:?}" "${JWT:?}"
BODY_TIMEOUT=${BODY_TIMEOUT:-2}
HEADER_TIMEOUT=${HEADER_TIMEOUT:-2}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-3}
case "$BASE" in
http://127.*|http://localhost*|http://\[::1\]*) ;;
*) echo "hostile.sh: BASE must be a loopback address" >&2; exit 2 ;;
esac
HOSTPORT=${BASE#http://}
HOST=${HOSTPORT%:*}
PORT=${HOSTPORT##*:}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cases=0 failed=0

# check NAME WANT CODE SECONDS: WANT is a |-separated list of codes, or 4xx.
check() {
	local name=$1 want=$2 code=$3 secs=$4 ok=no w
	cases=$((cases + 1))
	for w in ${want//|/ }; do
		if [[ $w == "$code" || ($w == 4xx && $code == 4??) ]]; then ok=yes; fi
	done
	if [[ $code == 5?? || $code == 000 ]]; then ok=no; fi
	if [[ $ok == yes ]]; then
		printf 'ok    %s  %6.3fs  %s\n' "$code" "$secs" "$name"
	else
		failed=$((failed + 1))
		printf 'FAIL  %s  %6.3fs  %s (want %s): %s\n' "$code" "$secs" "$name" "$want" "$(head -c 300 "$tmp/body" 2>/dev/null | tr '\n' ' ')"
	fi
}

# req NAME WANT METHOD PATH [TOKEN] [curl options...]
req() {
	local name=$1 want=$2 method=$3 path=$4 tok=${5:-}
	shift 5 2>/dev/null || shift $#
	local auth=()
	[[ -n $tok ]] && auth=(-H "Authorization: Bearer $tok")
	local out
	out=$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code} %{time_total}' --path-as-is --max-time 20 \
		-X "$method" "${auth[@]}" "$@" "$BASE$path")
	check "$name" "$want" "${out% *}" "${out#* }"
}

# raw NAME WANT SECONDS_MAX: sends stdin as raw bytes on a TCP connection,
# keeps it open and reads until the server closes it. The answer's status
# (or "closed" when the server closes without one) must be WANT, and the
# server must close within SECONDS_MAX (plus 3 s of slack).
raw() {
	local name=$1 want=$2 max=$3 start end code rc
	start=$(date +%s.%N)
	exec 3<>"/dev/tcp/$HOST/$PORT"
	cat >&3
	timeout "$((max + 3))" cat <&3 >"$tmp/body"
	rc=$?
	exec 3<&-
	end=$(date +%s.%N)
	code=$(head -c 12 "$tmp/body" | awk '{print $2}')
	[[ -z $code ]] && code=closed
	[[ $rc == 124 ]] && code="open(hang)"
	local secs
	secs=$(awk "BEGIN{print $end - $start}")
	cases=$((cases + 1))
	if [[ $code == "$want" || ($want == 4xx && $code == 4??) ]]; then
		printf 'ok    %s  %6.3fs  %s\n' "$code" "$secs" "$name"
	else
		failed=$((failed + 1))
		printf 'FAIL  %s  %6.3fs  %s (want %s within %ss)\n' "$code" "$secs" "$name" "$want" "$max"
	fi
}

now=$(date -u +%s)
to=$(date -u -d "@$(((now / 3600 + 1) * 3600))" +%Y-%m-%dT%H:%M:%SZ)
from=$(date -u -d "@$(((now / 3600 - 3) * 3600))" +%Y-%m-%dT%H:%M:%SZ)
Q="/v1/views/$VIEW/query"
OK="from=$from&to=$to"

echo "== queries: parameters"
req "valid" 200 GET "$Q?$OK" "$READ_TOKEN"
req "valid csv grouped" 200 GET "$Q?$OK&format=csv&group_by=tenant" "$READ_TOKEN"
req "valid ndjson, metrics, where" 200 GET "$Q?$OK&format=ndjson&metrics=orders&where=tenant:$TENANT" "$READ_TOKEN"
req "valid, trailing &" 200 GET "$Q?$OK&" "$READ_TOKEN"
req "valid, epoch ms" 200 GET "$Q?from=$(((now - 3600) * 1000))&to=$((now * 1000))&step=5m" "$READ_TOKEN"
req "unknown name with bad escape (grup_by=%zz)" 400 GET "$Q?$OK&grup_by=%zz" "$READ_TOKEN"
req "bad escape in a value" 400 GET "$Q?$OK&group_by=%zz" "$READ_TOKEN"
req "truncated escape" 400 GET "$Q?$OK&group_by=%2" "$READ_TOKEN"
req "semicolon in where" 400 GET "$Q?$OK&where=tenant:a;b" "$READ_TOKEN"
req "semicolon as separator" 400 GET "$Q?from=$from;to=$to" "$READ_TOKEN"
req "step twice" 400 GET "$Q?$OK&step=1m&step=5m" "$READ_TOKEN"
req "format twice" 400 GET "$Q?$OK&format=json&format=csv" "$READ_TOKEN"
req "from twice" 400 GET "$Q?$OK&from=$from" "$READ_TOKEN"
req "empty value" 400 GET "$Q?$OK&format=" "$READ_TOKEN"
req "name without value" 400 GET "$Q?$OK&format" "$READ_TOKEN"
req "value without name" 400 GET "$Q?$OK&=x" "$READ_TOKEN"
req "invalid UTF-8 name" 400 GET "$Q?$OK&%ff=1" "$READ_TOKEN"
req "invalid UTF-8 value" 400 GET "$Q?$OK&where=tenant:%ff" "$READ_TOKEN"
req "unknown parameter" 400 GET "$Q?$OK&limit=5" "$READ_TOKEN"
req "65 parameters" 400 GET "$Q?$OK$(printf '&where=tenant:a%.0s' {1..65})" "$READ_TOKEN"
req "from missing" 400 GET "$Q?to=$to" "$READ_TOKEN"
req "from garbage" 400 GET "$Q?from=yesterday&to=$to" "$READ_TOKEN"
req "from negative" 400 GET "$Q?from=-1&to=$to" "$READ_TOKEN"
req "to huge" 400 GET "$Q?from=0&to=99999999999999999999999" "$READ_TOKEN"
req "to year 2500" 400 GET "$Q?from=$from&to=2500-01-01T00:00:00Z" "$READ_TOKEN"
req "to before from" 400 GET "$Q?from=$to&to=$from" "$READ_TOKEN"
req "from = to" 400 GET "$Q?from=$from&to=$from" "$READ_TOKEN"
req "bad month" 400 GET "$Q?from=2026-13-01T00:00:00Z&to=$to" "$READ_TOKEN"
req "step 0" 400 GET "$Q?$OK&step=0s" "$READ_TOKEN"
req "step negative" 400 GET "$Q?$OK&step=-1m" "$READ_TOKEN"
req "step 1ns" 400 GET "$Q?$OK&step=1ns" "$READ_TOKEN"
req "step 90s" 400 GET "$Q?$OK&step=90s" "$READ_TOKEN"
req "step 99999d" 400 GET "$Q?$OK&step=99999d" "$READ_TOKEN"
req "step garbage" 400 GET "$Q?$OK&step=hourly" "$READ_TOKEN"
req "group_by unknown" 400 GET "$Q?$OK&group_by=region" "$READ_TOKEN"
req "group_by twice" 400 GET "$Q?$OK&group_by=tenant,tenant" "$READ_TOKEN"
req "where unknown dimension" 400 GET "$Q?$OK&where=region:eu" "$READ_TOKEN"
req "where without colon" 400 GET "$Q?$OK&where=tenant" "$READ_TOKEN"
req "where two values" 400 GET "$Q?$OK&where=tenant:a&where=tenant:b" "$READ_TOKEN"
req "metrics unknown" 400 GET "$Q?$OK&metrics=profit" "$READ_TOKEN"
req "metrics twice" 400 GET "$Q?$OK&metrics=orders,orders" "$READ_TOKEN"
req "format xml" 400 GET "$Q?$OK&format=xml" "$READ_TOKEN"
req "range of a year" 413 GET "$Q?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&step=1d" "$READ_TOKEN"
req "31 days at 1m (more steps than max_rows)" 413 GET "$Q?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z" "$READ_TOKEN"
req "31 days, 1h, both dimensions" "200|413" GET "$Q?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&step=1h&group_by=tenant,country" "$READ_TOKEN"
req "unknown view" 404 GET "/v1/views/nope/query?$OK" "$READ_TOKEN"
req "view with NUL" 4xx GET "/v1/views/a%00b/query?$OK" "$READ_TOKEN"
req "path traversal" 4xx GET "/v1/views/../../etc/passwd" "$READ_TOKEN"
req "dot segment into jobs" 4xx GET "/v1/views/../jobs" "$READ_TOKEN"
req "double slash" 4xx GET "//v1/views" "$READ_TOKEN"
req "query string of 70 KB" 4xx GET "$Q?$OK&where=tenant:$(head -c 70000 /dev/zero | tr '\0' a)" "$READ_TOKEN"
req "header of 70 KB" 4xx GET "$Q?$OK" "$READ_TOKEN" -H "X-Junk: $(head -c 70000 /dev/zero | tr '\0' a)"
req "odd Accept and Range" 200 GET "$Q?$OK" "$READ_TOKEN" -H "Accept: application/xml" -H "Range: bytes=0-10"
req "method not allowed" 4xx DELETE "$Q?$OK" "$READ_TOKEN"
req "unknown route" 404 GET "/v2/things" "$READ_TOKEN"

echo "== tokens"
req "no token" 401 GET "$Q?$OK" ""
req "unknown token" 401 GET "$Q?$OK" "not-a-token-at-all"
req "basic auth" 401 GET "$Q?$OK" "" -H "Authorization: Basic YWRtaW46YWRtaW4="
req "bearer without token" 401 GET "$Q?$OK" "" -H "Authorization: Bearer "
req "token of 60 KB" 4xx GET "$Q?$OK" "$(head -c 60000 /dev/zero | tr '\0' a)"
req "write token reads" 403 GET "$Q?$OK" "$WRITE_TOKEN"
req "read token on jobs" 403 GET "/v1/jobs" "$READ_TOKEN"
req "tenant token" 200 GET "$Q?$OK&group_by=tenant" "$TENANT_TOKEN"
req "tenant token, another tenant" 403 GET "$Q?$OK&where=tenant:someone-else" "$TENANT_TOKEN"
req "tenant token, two tenants" 403 GET "$Q?$OK&where=tenant:$TENANT&where=tenant:x" "$TENANT_TOKEN"
req "tenant token, tenant via %3A" 403 GET "$Q?$OK&where=tenant%3Asomeone-else" "$TENANT_TOKEN"
req "JWT" 200 GET "$Q?$OK" "$JWT"
req "JWT, another tenant" 403 GET "$Q?$OK&where=tenant:someone-else" "$JWT"
req "JWT tampered" 401 GET "$Q?$OK" "${JWT%?}x"
req "JWT alg none" 401 GET "$Q?$OK" "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.$(echo "$JWT" | cut -d. -f2)."
req "JWT garbage" 401 GET "$Q?$OK" "eyJ.eyJ.x"
req "JWT on jobs" 403 GET "/v1/jobs" "$JWT"

echo "== rate limit (1/s, burst 2)"
sleep 2.2
for i in 1 2; do req "limited token, request $i" 200 GET "/v1/views" "$LIMITED_TOKEN"; done
req "limited token, past the burst" 429 GET "/v1/views" "$LIMITED_TOKEN"
if grep -qi '^Retry-After: [0-9]' "$tmp/headers" && grep -qi '^X-RateLimit-Limit: 2' "$tmp/headers" &&
	grep -qi '^X-RateLimit-Remaining: 0' "$tmp/headers" && grep -qi '^X-RateLimit-Reset: [0-9]' "$tmp/headers"; then
	check "429 carries Retry-After and X-RateLimit-*" 200 200 0
else
	check "429 carries Retry-After and X-RateLimit-*" 200 000 0
fi

echo "== Events API"
E="/v1/events?schema=$SCHEMA"
ev() { printf '{"order_id":"h%s","ts":"%s","tenant":"%s","country":"de","user_id":"u1","amount":1.5}' "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${2:-$TENANT}"; }
ev 1 >"$tmp/one"
{ ev 1; echo; printf '{"order_id":"h2","ts":"%s","tenant":"t\xff","country":"de","user_id":"u1","amount":1}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"; ev 3; echo; } >"$tmp/utf8"
{
	ev 1
	echo
	printf '{"order_id":"h2","ts":"%s","tenant":"%s","country":"de","user_id":"u1","amount":1.5,"pad":"' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$TENANT"
	head -c 2000000 /dev/zero | tr '\0' x
	printf '"}\n'
	ev 3
	echo
} >"$tmp/long"
head -c $((11 << 20)) /dev/zero | tr '\0' ' ' >"$tmp/huge"
head -c 5000 /dev/zero | tr '\0' ' ' >"$tmp/slow"
req "events valid" 200 POST "$E" "$WRITE_TOKEN" --data-binary @"$tmp/one"
req "events, invalid UTF-8 line" 200 POST "$E" "$WRITE_TOKEN" --data-binary @"$tmp/utf8"
grep -q '"line":2,"error":"field \\"tenant\\": invalid UTF-8' "$tmp/body" && check "  …line 2 rejected as invalid UTF-8" 200 200 0 || check "  …line 2 rejected as invalid UTF-8" 200 000 0
req "events, strict with invalid UTF-8" 400 POST "$E&strict=true" "$WRITE_TOKEN" --data-binary @"$tmp/utf8"
req "events, a 2 MB line" 200 POST "$E" "$WRITE_TOKEN" --data-binary @"$tmp/long"
grep -q '"line":2,"error":"line is 2000[0-9]* bytes, more than the' "$tmp/body" && check "  …line 2 rejected with its size and the limit" 200 200 0 || check "  …line 2 rejected with its size and the limit" 200 000 0
req "events, body over max_body" 413 POST "$E" "$WRITE_TOKEN" --data-binary @"$tmp/huge"
req "events, body trickled (--limit-rate 100)" 408 POST "$E" "$WRITE_TOKEN" --limit-rate 100 --data-binary @"$tmp/slow"
req "events, no schema" 400 POST "/v1/events" "$WRITE_TOKEN" --data-binary @"$tmp/one"
req "events, unknown schema" 404 POST "/v1/events?schema=refunds" "$WRITE_TOKEN" --data-binary @"$tmp/one"
req "events, schema twice" 400 POST "$E&schema=$SCHEMA" "$WRITE_TOKEN" --data-binary @"$tmp/one"
req "events, strict=maybe" 400 POST "$E&strict=maybe" "$WRITE_TOKEN" --data-binary @"$tmp/one"
req "events, empty body" 400 POST "$E" "$WRITE_TOKEN" --data-binary ""
req "events, not JSON" 400 POST "$E" "$WRITE_TOKEN" --data-binary "{not json"
req "events, JSON array" 400 POST "$E" "$WRITE_TOKEN" --data-binary "[1,2,3]"
req "events, gzip body undeclared" 400 POST "$E" "$WRITE_TOKEN" -H "Content-Encoding: gzip" --data-binary @<(gzip -c "$tmp/one")
req "events, chunked" 200 POST "$E" "$WRITE_TOKEN" -H "Transfer-Encoding: chunked" --data-binary @"$tmp/one"
req "events, read token" 403 POST "$E" "$READ_TOKEN" --data-binary @"$tmp/one"
req "events, GET" 4xx GET "$E" "$WRITE_TOKEN"

echo "== jobs, health, document"
req "jobs" 200 GET "/v1/jobs?limit=5" "$ADMIN_TOKEN"
req "jobs limit 0" 400 GET "/v1/jobs?limit=0" "$ADMIN_TOKEN"
req "jobs limit abc" 400 GET "/v1/jobs?limit=abc" "$ADMIN_TOKEN"
req "jobs limit huge" 400 GET "/v1/jobs?limit=99999999999999999999" "$ADMIN_TOKEN"
req "jobs limit twice" 400 GET "/v1/jobs?limit=1&limit=2" "$ADMIN_TOKEN"
req "views with a parameter" 400 GET "/v1/views?x=1" "$READ_TOKEN"
req "healthz" 200 GET "/healthz" ""
req "readyz" "200|503" GET "/readyz" ""
grep -q 'dial tcp\|refused' "$tmp/body" && check "  …readyz shows no error text" 200 000 0 || check "  …readyz shows no error text" 200 200 0
req "metrics" 200 GET "/metrics" ""
req "openapi" 200 GET "/v1/openapi.yaml" ""
req "openapi with a parameter" 400 GET "/v1/openapi.yaml?v=2" ""
req "HTTP/1.0 without Host" 200 GET "/healthz" "" --http1.0 -H "Host:"

echo "== slow and idle connections"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' | raw "idle keep-alive closed after idle_timeout" 200 "$IDLE_TIMEOUT"
: | raw "connection sending nothing is closed" closed "$HEADER_TIMEOUT"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' | raw "headers never finished are cut" closed "$HEADER_TIMEOUT"
printf 'POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{"a":' "$E" "$WRITE_TOKEN" | raw "body shorter than Content-Length" 408 "$BODY_TIMEOUT"

echo "$cases cases, $failed failed"
[[ $failed == 0 ]]

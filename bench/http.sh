#!/usr/bin/env bash
# bench/http.sh — one-record Ingest over HTTP vs SQL, side by side (SPEC §9):
#
#   one-record SOAP Ingest over HTTP/1.1 keep-alive to the extension's HTTP
#   endpoint (wrk with bench/http_wrk.lua: $CLIENTS threads, one connection
#   each, one request at a time) vs SELECT campaign.xtk_ingest(...) over
#   libpq (pgbench -M prepared, $CLIENTS clients on as many threads), the
#   same record shape into the same staging table; $DURATION s per run,
#   $ROUNDS rounds interleaved, median TPS; ratio HTTP/SQL (floor 0.6, goal
#   0.8).
#
# Usage:  bash bench/http.sh              (as root or as postgres, or any
#                                          non-root user that can initdb)
# Knobs (environment): DURATION=10 ROUNDS=3 CLIENTS=4
#                      KEEP=1 (keep the scratch dir) PG_CONFIG=...
#
# The extension must be installed first (make && make install), and wrk
# (bash scripts/install-deps.sh bench).  The script starts its own scratch
# cluster in a temp dir: PostgreSQL on a unix socket in that dir, the HTTP
# endpoint on 127.0.0.1 and a free port, with campaign.http_workers =
# $CLIENTS (one server process per client on both sides, as pgbench has one
# backend per client), fsync and synchronous_commit on, and stops it at exit.
#
# Fairness notes:
#  - both sides stage the same record (random id and score, the same texts)
#    with a commit each; the HTTP side also parses the SOAP envelope, checks
#    the session token and runs the call in a subtransaction, as every SOAP
#    call does: that is the cost measured.
#  - both clients are C programs with one thread per connection, on the same
#    machine as the server; wrk also runs a Lua function per request (the
#    envelope) and per answer (the check of the UUID).  Each run checks that
#    every answer was 200 with a UUID and that the rows staged are the
#    answered calls (plus at most one per connection: wrk stops at the
#    deadline without waiting for the calls in flight).
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup bench/http.sh
command -v wrk >/dev/null || { echo "bench/http.sh: wrk is not installed (bash scripts/install-deps.sh bench)" >&2; exit 1; }
DATA=$WORK/data
read -r PORT HTTP_PORT < <(free_ports 2 55500 55599 | paste -sd' ')
WRK_LUA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/http_wrk.lua
bench_at_exit "$DATA"
bench_psql "$PORT"

# ---------------------------------------------------------------- cluster
# The same server for both sides.
start_cluster data "$PORT" "shared_preload_libraries = 'campaign'
track_commit_timestamp = off
campaign.http_port = $HTTP_PORT
campaign.http_listen_addresses = '127.0.0.1'
campaign.http_workers = $CLIENTS"

lsql "SET client_min_messages = warning; CREATE EXTENSION campaign CASCADE" >/dev/null
lsql "SELECT campaign.register_schema('<srcSchema name=\"sampleTable\" namespace=\"dem\" label=\"Sample table\"><element name=\"sampleTable\" autopk=\"true\" autouuid=\"true\" autoStg=\"true\"><key name=\"id\" internal=\"true\"><keyfield xpath=\"@id\"/></key><attribute name=\"id\" type=\"string\" length=\"20\" label=\"External id\"/><attribute name=\"testcol1\" type=\"string\" length=\"255\"/><attribute name=\"testcol2\" type=\"string\" length=\"255\"/><attribute name=\"score\" type=\"long\"/><attribute name=\"notes\" type=\"memo\"/></element></srcSchema>')" >/dev/null
lsql "CREATE ROLE bench_api LOGIN PASSWORD 'bench secret' IN ROLE campaign_ingest; GRANT INSERT ON dem.sampletablestg TO bench_api"

URL="http://127.0.0.1:$HTTP_PORT/nl/jsp/soaprouter.jsp"
for _ in $(seq 1 100); do
    [ "$(lsql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign http worker'")" = "$CLIENTS" ] && break
    sleep 0.1
done
TOKEN=$(curl -sS -H 'Content-Type: text/xml' --data-binary @- "$URL" <<'EOF' | sed -nE 's/.*<pstrSessionToken[^>]*>([^<]+)<.*/\1/p'
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session"><soapenv:Body><urn:Logon><urn:sessiontoken/><urn:strLogin>bench_api</urn:strLogin><urn:strPassword>bench secret</urn:strPassword><urn:elemParameters/></urn:Logon></soapenv:Body></soapenv:Envelope>
EOF
)
[ -n "$TOKEN" ] || { echo "bench/http.sh: Logon over HTTP failed" >&2; exit 1; }

bench_banner "campaign HTTP bench" "$(lsql "SHOW server_version")"
echo "   scratch cluster $DATA, port $PORT, HTTP on 127.0.0.1:$HTTP_PORT with $CLIENTS workers; fsync=on, synchronous_commit=on"
echo "   load average at start: $(load_average) (other load on the machine makes the figures noisy)"

write_ingest_pgbench "$WORK/ingest.pgbench"

reset_table() {
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    lsql "CHECKPOINT" >/dev/null
}

run_http() {  # run_http ROUND -> prints TPS
    local log="$WORK/http-$1.log" staged
    reset_table
    wrk -t "$CLIENTS" -c "$CLIENTS" -d "${DURATION}s" --timeout 30s -s "$WRK_LUA" "$URL" -- "$TOKEN" \
        >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    if ! grep -q ' failed 0 ' "$log"; then cat "$log" >&2; exit 1; fi
    staged=$(lsql "SELECT count(*) FROM dem.sampletablestg")
    awk -v s="$staged" -v c="$CLIENTS" '/^requests/ {
            if (s < $2 || s > $2 + c) { print "bench/http.sh: " $2 " answers but " s " rows staged" > "/dev/stderr"; exit 1 }
            printf "%.1f\n", $8 }' "$log"
}

run_sql() {  # run_sql ROUND -> prints TPS
    local log="$WORK/pgbench-$1.log"
    reset_table
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$PORT" -M prepared -c "$CLIENTS" -j "$CLIENTS" \
        -T "$DURATION" -f "$WORK/ingest.pgbench" postgres >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    pgbench_tps "$log"
}

echo
echo "one-record Ingest: SOAP over HTTP keep-alive vs SELECT campaign.xtk_ingest() over libpq"
echo "    $CLIENTS clients, $DURATION s per run, $ROUNDS rounds interleaved"
printf '    %-8s %16s %16s %12s\n' round "HTTP TPS" "SQL TPS" "round ratio"
HTTP_TPS=() SQL_TPS=() PAIR=()
for r in $(seq 1 "$ROUNDS"); do
    a=$(run_http "$r")
    b=$(run_sql "$r")
    HTTP_TPS+=("$a") SQL_TPS+=("$b") PAIR+=("$(ratio "$a" "$b")")
    printf '    %-8s %16s %16s %12s\n' "$r" "$a" "$b" "${PAIR[-1]}"
done
HTTP_MED=$(printf '%s\n' "${HTTP_TPS[@]}" | median)
SQL_MED=$(printf '%s\n' "${SQL_TPS[@]}" | median)
PAIR_MED=$(printf '%s\n' "${PAIR[@]}" | median 2)
R=$(ratio "$HTTP_MED" "$SQL_MED")
printf '    %-8s %16s %16s %12s\n' median "$HTTP_MED" "$SQL_MED" "$PAIR_MED"
echo "    ratio HTTP/SQL = $R (of the medians; median of the round ratios $PAIR_MED)  (floor 0.60, goal 0.80): $(verdict "$R" 0.6 0.8)"
echo "   load average at end: $(load_average)"

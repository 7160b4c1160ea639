#!/usr/bin/env bash
# bench/ingest.sh — ingest speed, side by side (SPEC §9), in one run:
#
#   (1) one-record xtk_ingest vs a prepared single-row INSERT of the same row
#       into the same staging table: pgbench, 2 clients, -M prepared,
#       $DURATION s per run, $ROUNDS rounds interleaved, median TPS;
#       ratio ingest/INSERT (floor 0.7, goal 0.9).
#   (2) a $NROWS-record collection through xtk_ingest vs COPY FROM of the same
#       rows into an identical table (CREATE TABLE ... LIKE ... INCLUDING ALL),
#       best of $REPEAT; ratio COPY_time/ingest_time (floor 0.5, goal 0.8).
#
# Usage:  bash bench/ingest.sh            (as root or as postgres, or any
#                                          non-root user that can initdb)
# Knobs (environment): DURATION=15 ROUNDS=3 NROWS=100000 REPEAT=3
#                      KEEP=1 (keep the scratch dir) PG_CONFIG=...
#
# The extension must be installed first (make && make install).  The script
# starts its own scratch cluster (initdb as postgres when run as root) in a
# temp dir, on a free port, listening on a unix socket in that dir only, and
# stops it at exit.  Both sides of each comparison run on the same cluster
# with the same settings: fsync and synchronous_commit on (defaults),
# shared_buffers = 256MB, max_wal_size = 4GB (fewer checkpoints in the middle
# of a timed run, for both sides alike).  Before every timed run the tables
# are truncated and a CHECKPOINT taken, so each run starts from the same
# state.
#
# Fairness notes:
#  - pgbench: both scripts build their text values from the same two random
#    integers with server-side || (the ingest side builds the XML document,
#    as an API client would send it); both write one row with a fresh random
#    UUID and the identity _stg_seq into dem.sampletablestg.  (The literal
#    "dem:" || "sampleTableStg" is split because pgbench would take
#    ":sampleTableStg" for a variable.)
#  - COPY vs collection: both read their input server-side from a file in the
#    scratch dir (COPY ... FROM 'file' / xtk_ingest(pg_read_file('file'))),
#    both draw _stg_seq from an identity sequence (the COPY column list
#    leaves _stg_seq out), and the COPY data carries every other internal
#    column (_uuid, _operation, _key, _carried, _lastmodified, _stg_error).
#    Times are psql's \timing of each autocommit statement (commit included).
#    The ingest returns its 100k UUIDs; only length() of that text is sent
#    to the client.
set -euo pipefail

DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
NROWS=${NROWS:-100000}
REPEAT=${REPEAT:-3}
CLIENTS=2
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup bench/ingest.sh
DATA=$WORK/data
LOG=$WORK/server.log
PORT=$(free_ports 1 55400 55499)

cleanup() {
    local rc=$?
    bench_finish "$rc" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PSQL=(as_owner "$BINDIR/psql" -X -q -h "$WORK" -p "$PORT" -d bench -v ON_ERROR_STOP=1 -P pager=off)
sql() { "${PSQL[@]}" -At -c "$1"; }

# ---------------------------------------------------------------- cluster
as_owner "$BINDIR/initdb" -D "$DATA" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF
# bench/ingest.sh: the same settings for both sides of every comparison
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'campaign'
max_worker_processes = 16
shared_buffers = 256MB
max_wal_size = 4GB
fsync = on
synchronous_commit = on
EOF
as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w start >/dev/null || { cat "$LOG" >&2; exit 1; }
as_owner "$BINDIR/createdb" -h "$WORK" -p "$PORT" bench

sql "SET client_min_messages = warning; CREATE EXTENSION campaign CASCADE" >/dev/null
sql "SELECT campaign.register_schema('<srcSchema name=\"sampleTable\" namespace=\"dem\" label=\"Sample table\"><element name=\"sampleTable\" autopk=\"true\" autouuid=\"true\" autoStg=\"true\"><key name=\"id\" internal=\"true\"><keyfield xpath=\"@id\"/></key><attribute name=\"id\" type=\"string\" length=\"20\" label=\"External id\"/><attribute name=\"testcol1\" type=\"string\" length=\"255\"/><attribute name=\"testcol2\" type=\"string\" length=\"255\"/><attribute name=\"score\" type=\"long\"/><attribute name=\"notes\" type=\"memo\"/></element></srcSchema>')" >/dev/null
sql "CREATE TABLE bench_copy (LIKE dem.sampletablestg INCLUDING ALL)"

bench_banner "campaign ingest bench" "$(sql "SHOW server_version")"
echo "   scratch cluster $DATA, port $PORT; shared_buffers=256MB, max_wal_size=4GB, fsync=on, synchronous_commit=on"
LOAD_START=$(load_average)
echo "   load average at start: $LOAD_START (the other side of each ratio runs right next to it, but other load on the machine makes the figures noisy)"

reset_tables() {
    sql "TRUNCATE dem.sampletablestg, bench_copy" >/dev/null
    sql "CHECKPOINT" >/dev/null
}


# ---------------------------------------------------------------- (1) pgbench
cat >"$WORK/ingest.pgbench" <<'EOF'
\set id random(1, 2000000000)
\set score random(0, 1000000)
SELECT campaign.xtk_ingest('<sampleTableStg id="' || :id || '" testcol1="value-' || :id || ' lorem ipsum" testcol2="second column ' || :score || ' with some text" score="' || :score || '" xtkschema="dem:' || 'sampleTableStg"/>');
EOF
cat >"$WORK/insert.pgbench" <<'EOF'
\set id random(1, 2000000000)
\set score random(0, 1000000)
INSERT INTO dem.sampletablestg(_uuid, _operation, _carried, id, testcol1, testcol2, score) VALUES (gen_random_uuid(), 'insert', '{id,testcol1,testcol2,score}', :id, 'value-' || :id || ' lorem ipsum', 'second column ' || :score || ' with some text', :score);
EOF
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$WORK"/*.pgbench; fi

# A quick functional check of both scripts (and of the row they write).
for s in ingest insert; do
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$PORT" -M prepared -t 3 -f "$WORK/$s.pgbench" bench \
        >"$WORK/check-$s.log" 2>&1 || { cat "$WORK/check-$s.log" >&2; exit 1; }
done
if [ "$(sql "SELECT count(DISTINCT (_operation, _carried::text, _key IS NULL, notes IS NULL)) FROM dem.sampletablestg")" != 1 ] ||
   [ "$(sql "SELECT count(*) FROM dem.sampletablestg")" != 6 ]; then
    echo "bench/ingest.sh: the two pgbench scripts do not write the same kind of row:" >&2
    sql "SELECT * FROM dem.sampletablestg" >&2
    exit 1
fi

run_pgbench() {  # run_pgbench NAME -> prints TPS
    local log="$WORK/pgbench-$1-$2.log"
    reset_tables
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$PORT" -M prepared -c "$CLIENTS" -j "$CLIENTS" \
        -T "$DURATION" -f "$WORK/$1.pgbench" bench >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$log" | awk '{ printf "%.1f\n", $1 }'
}

echo
echo "(1) one-record xtk_ingest vs prepared single-row INSERT into dem.sampletablestg"
echo "    pgbench -M prepared -c $CLIENTS -j $CLIENTS -T $DURATION, $ROUNDS rounds interleaved"
printf '    %-8s %16s %16s %12s\n' round "xtk_ingest TPS" "INSERT TPS" "round ratio"
ING_TPS=() INS_TPS=() PAIR=()
for r in $(seq 1 "$ROUNDS"); do
    a=$(run_pgbench ingest "$r")
    b=$(run_pgbench insert "$r")
    ING_TPS+=("$a") INS_TPS+=("$b") PAIR+=("$(ratio "$a" "$b")")
    printf '    %-8s %16s %16s %12s\n' "$r" "$a" "$b" "${PAIR[-1]}"
done
ING_MED=$(printf '%s\n' "${ING_TPS[@]}" | median)
INS_MED=$(printf '%s\n' "${INS_TPS[@]}" | median)
PAIR_MED=$(printf '%s\n' "${PAIR[@]}" | median)
R1=$(ratio "$ING_MED" "$INS_MED")
V1=$(verdict "$R1" 0.7 0.9)
printf '    %-8s %16s %16s %12s\n' median "$ING_MED" "$INS_MED" "$PAIR_MED"
echo "    ratio xtk_ingest/INSERT = $R1 (of the medians; median of the round ratios $PAIR_MED)  (floor 0.70, goal 0.90): $V1"
# Spread of each side across rounds: over 25% of the median means the
# machine was busy with something else and the figures are not reliable.
NOISY1=$(printf '%s\n' "${ING_TPS[@]}" "${INS_TPS[@]}" | awk -v a="$ING_MED" -v b="$INS_MED" -v n="$ROUNDS" '
    { v[NR] = $1 } END {
        for (side = 0; side < 2; side++) {
            lo = hi = v[side * n + 1];
            for (i = side * n + 1; i <= side * n + n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
            m = side ? b : a;
            if (m > 0 && (hi - lo) / m > 0.25) noisy = 1
        }
        print noisy ? "yes" : "no" }')
if [ "$NOISY1" = yes ]; then
    echo "    WARNING: TPS varied by more than 25% between rounds: the machine was busy; rerun for reliable figures"
fi

# ---------------------------------------------------------------- (2) collection vs COPY
# The same NROWS rows, generated once: a collection document and COPY text
# data (with the internal columns) from one loop.
as_owner awk -v n="$NROWS" -v xml="$WORK/collection.xml" -v tsv="$WORK/copy.tsv" 'BEGIN {
    srand(42);
    printf "<sampleTableStg-collection xtkschema=\"dem:sampleTableStg\">\n" > xml;
    for (i = 1; i <= n; i++) {
        id = sprintf("ID%08d", i);
        c1 = sprintf("value-%d lorem ipsum", i);
        c2 = sprintf("second column %d with some text", (i * 7919) % 1000003);
        score = (i * 104729) % 1000000;
        printf "<sampleTableStg id=\"%s\" testcol1=\"%s\" testcol2=\"%s\" score=\"%d\"/>\n", id, c1, c2, score > xml;
        u = "";
        for (k = 0; k < 32; k++) u = u sprintf("%x", int(rand() * 16));
        u = substr(u, 1, 8) "-" substr(u, 9, 4) "-4" substr(u, 14, 3) "-" sprintf("%x", 8 + int(rand() * 4)) substr(u, 18, 3) "-" substr(u, 21, 12);
        printf "%s\tinsert\t\\N\t{id,testcol1,testcol2,score}\t2024-01-01 00:00:00+00\t\\N\t%s\t%s\t%s\t%d\n", u, id, c1, c2, score > tsv;
    }
    printf "</sampleTableStg-collection>\n" > xml;
}'
XML_BYTES=$(stat -c %s "$WORK/collection.xml")
TSV_BYTES=$(stat -c %s "$WORK/copy.tsv")

time_ms() {  # time_ms SQL -> prints the statement's milliseconds (psql \timing)
    local out
    out=$("${PSQL[@]}" -At <<EOF
\\timing on
$1
EOF
)
    printf '%s\n' "$out" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -n1
}

COPY_SQL="COPY bench_copy (_uuid, _operation, _key, _carried, _lastmodified, _stg_error, id, testcol1, testcol2, score) FROM '$WORK/copy.tsv'"
INGEST_SQL="SELECT length(campaign.xtk_ingest(pg_read_file('$WORK/collection.xml')))"

echo
echo "(2) $NROWS-record collection through xtk_ingest vs COPY FROM of the same rows"
echo "    input files: collection $XML_BYTES bytes, COPY data $TSV_BYTES bytes; best of $REPEAT, interleaved"
printf '    %-8s %16s %16s\n' run "xtk_ingest ms" "COPY ms"
ING_MS=() COPY_MS=()
for r in $(seq 1 "$REPEAT"); do
    reset_tables
    a=$(time_ms "$INGEST_SQL")
    n=$(sql "SELECT count(*) FROM dem.sampletablestg")
    [ "$n" = "$NROWS" ] || { echo "bench/ingest.sh: xtk_ingest staged $n rows, not $NROWS" >&2; exit 1; }
    reset_tables
    b=$(time_ms "$COPY_SQL")
    n=$(sql "SELECT count(*) FROM bench_copy")
    [ "$n" = "$NROWS" ] || { echo "bench/ingest.sh: COPY loaded $n rows, not $NROWS" >&2; exit 1; }
    ING_MS+=("$a") COPY_MS+=("$b")
    printf '    %-8s %16s %16s\n' "$r" "$a" "$b"
done
# Same content on both sides (apart from the generated _uuid, _stg_seq, _lastmodified).
same=$(sql "SELECT count(*) FROM (SELECT _operation, _key, _carried, _stg_error, id, testcol1, testcol2, score, notes FROM dem.sampletablestg
                                   EXCEPT ALL
                                   SELECT _operation, _key, _carried, _stg_error, id, testcol1, testcol2, score, notes FROM bench_copy) d")
[ "$same" = 0 ] || { echo "bench/ingest.sh: ingested and copied rows differ ($same rows)" >&2; exit 1; }
ING_BEST=$(printf '%s\n' "${ING_MS[@]}" | sort -g | head -n1)
COPY_BEST=$(printf '%s\n' "${COPY_MS[@]}" | sort -g | head -n1)
R2=$(ratio "$COPY_BEST" "$ING_BEST")
V2=$(verdict "$R2" 0.5 0.8)
printf '    %-8s %16s %16s\n' best "$ING_BEST" "$COPY_BEST"
NOISY2=$(printf '%s\n' "${ING_MS[@]}" | awk -v best="$ING_BEST" '{ if ($1 > 1.5 * best) n++ } END { print (n >= 2 ? "yes" : "no") }')
if [ "$NOISY2" = yes ] && [ "$REPEAT" -ge 3 ]; then
    echo "    note: xtk_ingest times vary a lot from run to run (best is kept)"
fi
echo "    ratio COPY_time/ingest_time = $R2  (floor 0.50, goal 0.80): $V2"
ING_RPS=$(awk -v n="$NROWS" -v ms="$ING_BEST" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
COPY_RPS=$(awk -v n="$NROWS" -v ms="$COPY_BEST" 'BEGIN { printf "%.0f", n / (ms / 1000) }')

# ---------------------------------------------------------------- summary
echo
echo "== summary"
printf '   %-44s %12s %12s %7s  %s\n' "measure" "campaign" "baseline" "ratio" "verdict (floor/goal)"
printf '   %-44s %12s %12s %7s  %s\n' "one-record xtk_ingest vs INSERT (TPS, median)" "$ING_MED" "$INS_MED" "$R1" "$V1 (0.7/0.9)"
printf '   %-44s %12s %12s %7s  %s\n' "${NROWS}-row collection vs COPY (ms, best)" "$ING_BEST" "$COPY_BEST" "$R2" "$V2 (0.5/0.8)"
printf '   %-44s %12s %12s\n' "   (rows/s)" "$ING_RPS" "$COPY_RPS"
echo "   load average at start: $LOAD_START, at end: $(load_average)${NOISY1/#yes/; pgbench rounds were NOISY}"

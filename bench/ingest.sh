#!/usr/bin/env bash
# bench/ingest.sh — ingest speed and the worker's cost (SPEC §9), in one run:
#
#   (1) one-record xtk_ingest vs a prepared single-row INSERT of the same row
#       into the same staging table, at $CLIENT_COUNTS clients (pgbench
#       -M prepared, $DURATION s per run); $ROUNDS rounds, each running every
#       client count, the two sides back to back in alternating order;
#       median TPS per side and client count; ratio ingest/INSERT (floor
#       0.8, goal 0.95, at every client count).  The schema is registered
#       but not deployed, as on a server whose replication is not set up.
#   (2) a $NROWS-record collection through xtk_ingest vs COPY FROM of the same
#       rows into an identical table (CREATE TABLE ... LIKE ... INCLUDING ALL),
#       best of $REPEAT; ratio COPY_time/ingest_time (floor 0.5, goal 0.8).
#   (3) the replication workers' CPU while $CPU_CLIENTS clients ingest as fast
#       as they can for $CPU_SECONDS s into a schema that is not deployed
#       (goal <= 0.02 core).
#   (4) the replication workers' CPU while they replicate a steady
#       $RATE one-record ingests a second ($CPU_CLIENTS clients, pgbench
#       --rate, $CPU_SECONDS s) to a cloud server (a second scratch cluster),
#       continuous mode (goal <= 0.2 core), and the replication lag of those
#       records (goal p99 < 100 ms): of the records committed in the window
#       the CPU is measured in (after the warm-up), and of all of them.  The ingest sessions of this load run
#       with synchronous_commit = $STEADY_SYNC_COMMIT (default off): a
#       2-core machine with a slow disk cannot commit 4,000 transactions a
#       second with a flush each, and the worker's work does not depend on
#       it (the worker's and the cloud's commits stay synchronous).  The lag
#       of a record is the commit time
#       of the cloud transaction that made it visible minus the commit time
#       of its local ingest transaction: both servers run with
#       track_commit_timestamp = on and share the machine clock, as in
#       bench/replication.sh.
#
# Worker CPU: every second the pids of the replication workers of the local
# server are read from pg_stat_activity (every backend_type starting with
# 'campaign replication': one worker or a pool, and whatever starts them),
# and each one's
# utime + stime from /proc/<pid>/stat; the figure is the sum over the
# workers of the ticks they used in the window, over the window's length
# (a worker that started inside the window counts all its ticks).  The
# first $WARMUP s of each load are left out.
#
# Usage:  bash bench/ingest.sh            (as root or as postgres, or any
#                                          non-root user that can initdb)
# Knobs (environment): CLIENT_COUNTS="1 8 32" DURATION=6 ROUNDS=5
#                      NROWS=100000 REPEAT=3
#                      CPU_CLIENTS=8 CPU_SECONDS=20 RATE=4000 WARMUP=3
#                      STEADY_SYNC_COMMIT=off
#                      SECTIONS="1 2 3 4" (which parts to run)
#                      KEEP=1 (keep the scratch dir) PG_CONFIG=...
#                      PROFILE=1: during (4)'s measured window, also
#                      `perf record -g` (at PROFILE_FREQ=999 Hz) the
#                      replication workers' pids, then print the top
#                      PROFILE_TOP=25 symbols by self time and by time with
#                      children (perf must be installed and allowed; the
#                      sampling costs the workers a little CPU, so compare
#                      runs taken with the same setting)
#
# The extension must be installed first (make && make install).  The script
# starts its own scratch clusters (initdb as postgres when run as root) in a
# temp dir, on free ports, listening on unix sockets in that dir only, and
# stops them at exit.  Both sides of each comparison run on the same cluster
# with the same settings (bench/lib.sh's start_cluster: fsync and
# synchronous_commit on, shared_buffers = 256MB, max_wal_size = 4GB (fewer
# checkpoints in the middle of a timed run, for both sides alike),
# track_commit_timestamp = on).  Before every timed run the tables are
# truncated and a CHECKPOINT taken, so each run starts from the same state.
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

CLIENT_COUNTS=${CLIENT_COUNTS:-1 8 32}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-5}
NROWS=${NROWS:-100000}
REPEAT=${REPEAT:-3}
CPU_CLIENTS=${CPU_CLIENTS:-8}
CPU_SECONDS=${CPU_SECONDS:-20}
RATE=${RATE:-4000}
WARMUP=${WARMUP:-3}
STEADY_SYNC_COMMIT=${STEADY_SYNC_COMMIT:-off}
PROFILE=${PROFILE:-0}
PROFILE_FREQ=${PROFILE_FREQ:-999}
PROFILE_TOP=${PROFILE_TOP:-25}
SECTIONS=${SECTIONS:-1 2 3 4}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup bench/ingest.sh
mapfile -t PORTS < <(free_ports 2 55400 55499)
[ "${#PORTS[@]}" -eq 2 ] || exit 1
PORT=${PORTS[0]} CPORT=${PORTS[1]}
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

bench_at_exit "$WORK/cloud" "$WORK/local"
bench_psql "$PORT" "$CPORT" bench
# perf record -p (PROFILE=1) ends by itself when the servers stop.
PERF_PID=

# ---------------------------------------------------------------- cluster
# The worker serves database bench, where the extension is.
start_cluster local "$PORT" "shared_preload_libraries = 'campaign'
campaign.database = 'bench'
max_connections = $(( $(printf '%s\n' $CLIENT_COUNTS "$CPU_CLIENTS" | sort -n | tail -n1) + 20 ))"
as_owner "$BINDIR/createdb" -h "$WORK" -p "$PORT" bench

lsql "SET client_min_messages = warning; CREATE EXTENSION campaign CASCADE" >/dev/null
lsql "SELECT campaign.register_schema('<srcSchema name=\"sampleTable\" namespace=\"dem\" label=\"Sample table\"><element name=\"sampleTable\" autopk=\"true\" autouuid=\"true\" autoStg=\"true\"><key name=\"id\" internal=\"true\"><keyfield xpath=\"@id\"/></key><attribute name=\"id\" type=\"string\" length=\"20\" label=\"External id\"/><attribute name=\"testcol1\" type=\"string\" length=\"255\"/><attribute name=\"testcol2\" type=\"string\" length=\"255\"/><attribute name=\"score\" type=\"long\"/><attribute name=\"notes\" type=\"memo\"/></element></srcSchema>')" >/dev/null
lsql "CREATE TABLE bench_copy (LIKE dem.sampletablestg INCLUDING ALL)"

bench_banner "campaign ingest bench" "$(lsql "SHOW server_version")"
echo "   scratch cluster $WORK/local, port $PORT; shared_buffers=256MB, max_wal_size=4GB, fsync=on, synchronous_commit=on, track_commit_timestamp=on"
LOAD_START=$(load_average)
echo "   load average at start: $LOAD_START (the other side of each ratio runs right next to it, but other load on the machine makes the figures noisy)"

reset_tables() {
    lsql "TRUNCATE dem.sampletablestg, bench_copy" >/dev/null
    lsql "CHECKPOINT" >/dev/null
}


# ---------------------------------------------------------------- (1) pgbench
write_ingest_pgbench "$WORK/ingest.pgbench"
cat >"$WORK/insert.pgbench" <<'EOF'
\set id random(1, 2000000000)
\set score random(0, 1000000)
INSERT INTO dem.sampletablestg(_uuid, _operation, _carried, id, testcol1, testcol2, score) VALUES (gen_random_uuid(), 'insert', '{id,testcol1,testcol2,score}', :id, 'value-' || :id || ' lorem ipsum', 'second column ' || :score || ' with some text', :score);
EOF
own "$WORK/insert.pgbench"

# A quick functional check of both scripts (and of the row they write).
for s in ingest insert; do
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$PORT" -M prepared -t 3 -f "$WORK/$s.pgbench" bench \
        >"$WORK/check-$s.log" 2>&1 || { cat "$WORK/check-$s.log" >&2; exit 1; }
done
if [ "$(lsql "SELECT count(DISTINCT (_operation, _carried::text, _key IS NULL, notes IS NULL)) FROM dem.sampletablestg")" != 1 ] ||
   [ "$(lsql "SELECT count(*) FROM dem.sampletablestg")" != 6 ]; then
    echo "bench/ingest.sh: the two pgbench scripts do not write the same kind of row:" >&2
    lsql "SELECT * FROM dem.sampletablestg" >&2
    exit 1
fi

run_pgbench() {  # run_pgbench SCRIPT CLIENTS ROUND -> prints TPS
    local log="$WORK/pgbench-$1-$2-$3.log"
    reset_tables
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$PORT" -M prepared -c "$2" -j "$(( $2 < 2 ? $2 : 2 ))" \
        -T "$DURATION" -f "$WORK/$1.pgbench" bench >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    pgbench_tps "$log"
}

declare -A ING_TPS INS_TPS PAIR
R1=() V1=() ING_MED=() INS_MED=() PAIR_MED=() NOISY1=no
if section 1; then
echo
echo "(1) one-record xtk_ingest vs prepared single-row INSERT into dem.sampletablestg"
echo "    pgbench -M prepared -T $DURATION at $CLIENT_COUNTS clients, $ROUNDS rounds interleaved (the order of the two sides alternating)"
printf '    %-6s %-8s %16s %16s %12s\n' round clients "xtk_ingest TPS" "INSERT TPS" "round ratio"
for r in $(seq 1 "$ROUNDS"); do
    for c in $CLIENT_COUNTS; do
        if [ $((r % 2)) = 1 ]; then
            a=$(run_pgbench ingest "$c" "$r"); b=$(run_pgbench insert "$c" "$r")
        else
            b=$(run_pgbench insert "$c" "$r"); a=$(run_pgbench ingest "$c" "$r")
        fi
        ING_TPS[$c]+="$a " INS_TPS[$c]+="$b " PAIR[$c]+="$(ratio "$a" "$b") "
        printf '    %-6s %-8s %16s %16s %12s\n' "$r" "$c" "$a" "$b" "$(ratio "$a" "$b")"
    done
done
i=0
for c in $CLIENT_COUNTS; do
    ING_MED[i]=$(printf '%s\n' ${ING_TPS[$c]} | median)
    INS_MED[i]=$(printf '%s\n' ${INS_TPS[$c]} | median)
    PAIR_MED[i]=$(printf '%s\n' ${PAIR[$c]} | median 2)
    R1[i]=$(ratio "${ING_MED[i]}" "${INS_MED[i]}")
    V1[i]=$(verdict "${R1[i]}" 0.8 0.95)
    printf '    %-6s %-8s %16s %16s %12s\n' median "$c" "${ING_MED[i]}" "${INS_MED[i]}" "${PAIR_MED[i]}"
    # Spread of a side across rounds over 25% of its median: the machine
    # was busy with something else and the figures are not reliable.
    for side in "${ING_TPS[$c]}:${ING_MED[i]}" "${INS_TPS[$c]}:${INS_MED[i]}"; do
        if printf '%s\n' ${side%%:*} | awk -v m="${side##*:}" '{ if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
                END { exit !(m > 0 && (hi - lo) / m > 0.25) }'; then NOISY1=yes; fi
    done
    i=$((i + 1))
done
i=0
for c in $CLIENT_COUNTS; do
    echo "    $c client(s): ratio xtk_ingest/INSERT = ${R1[i]} (of the medians; median of the round ratios ${PAIR_MED[i]})  (floor 0.80, goal 0.95): ${V1[i]}"
    i=$((i + 1))
done
if [ "$NOISY1" = yes ]; then
    echo "    WARNING: TPS varied by more than 25% between rounds: the machine was busy; rerun for reliable figures"
fi
fi

# ---------------------------------------------------------------- (2) collection vs COPY
# The same NROWS rows, generated once: a collection document and COPY text
# data (with the internal columns) from one loop.
R2=- V2="not run" ING_BEST=- COPY_BEST=- ING_RPS=- COPY_RPS=-
if section 2; then
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

time_ms() { timed_sql "$1" | timing_ms; }  # time_ms SQL -> the statement's ms

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
    n=$(lsql "SELECT count(*) FROM dem.sampletablestg")
    [ "$n" = "$NROWS" ] || { echo "bench/ingest.sh: xtk_ingest staged $n rows, not $NROWS" >&2; exit 1; }
    reset_tables
    b=$(time_ms "$COPY_SQL")
    n=$(lsql "SELECT count(*) FROM bench_copy")
    [ "$n" = "$NROWS" ] || { echo "bench/ingest.sh: COPY loaded $n rows, not $NROWS" >&2; exit 1; }
    ING_MS+=("$a") COPY_MS+=("$b")
    printf '    %-8s %16s %16s\n' "$r" "$a" "$b"
done
# Same content on both sides (apart from the generated _uuid, _stg_seq, _lastmodified).
same=$(lsql "SELECT count(*) FROM (SELECT _operation, _key, _carried, _stg_error, id, testcol1, testcol2, score, notes FROM dem.sampletablestg
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
ING_RPS=$(per_s "$NROWS" "$ING_BEST")
COPY_RPS=$(per_s "$NROWS" "$COPY_BEST")
fi

# ---------------------------------------------------------------- worker CPU
CLK_TCK=$(getconf CLK_TCK)
# Every second until $WORK/sampler.stop exists: "round time pid ticks" of
# each replication worker (utime + stime: fields 14 and 15 of
# /proc/<pid>/stat, counted after the command name, which may hold spaces).
worker_sampler() {
    local out=$1 round=0 pid stat
    while [ ! -e "$WORK/sampler.stop" ]; do
        round=$((round + 1))
        for pid in $(lsql "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'campaign replication%'"); do
            stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
            stat=${stat##*) }
            # shellcheck disable=SC2086
            set -- $stat
            echo "$round $(date +%s.%N) $pid $((${12} + ${13}))"
        done >>"$out"
        sleep 1
    done
}
sampler_start() {  # sampler_start FILE: sample the workers in the background
    rm -f "$WORK/sampler.stop" "$1"
    worker_sampler "$1" &
    SAMPLER_PID=$!
}
# The workers' CPU over the sampled window, in cores, and how many there
# were: a worker seen in the first round counts the ticks since then, one
# that started later all its ticks.
sampler_stop() {  # sampler_stop FILE -> prints "CORES WORKERS"
    touch "$WORK/sampler.stop"
    wait "$SAMPLER_PID" || true
    SAMPLER_PID=
    awk -v hz="$CLK_TCK" '
        NR == 1 { t0 = $2 }
        { if (!($3 in first)) { first[$3] = ($1 == 1 ? $4 : 0); n++ }
          last[$3] = $4; t1 = $2 }
        END { if (t1 <= t0) { print "- " n + 0; exit }
              for (p in last) ticks += last[p] - first[p];
              printf "%.3f %d\n", ticks / hz / (t1 - t0), n }' "$1" 2>/dev/null || echo "- 0"
}

# A load of $CPU_CLIENTS clients for WARMUP + CPU_SECONDS s; the workers are
# sampled after the warm-up, until the load ends.  Extra pgbench options
# come after the script name.  Prints "CORES WORKERS TPS".
cpu_under_load() {  # cpu_under_load NAME SCRIPT SYNCHRONOUS_COMMIT [PGBENCH OPTIONS...]
    local name=$1 script=$2 sync=$3 pgb cores
    shift 3
    as_owner env PGOPTIONS="-c synchronous_commit=$sync" "$BINDIR/pgbench" -n -h "$WORK" -p "$PORT" -M prepared -c "$CPU_CLIENTS" -j 2 \
        -T "$((WARMUP + CPU_SECONDS))" "$@" -f "$WORK/$script.pgbench" bench >"$WORK/pgbench-$name.log" 2>&1 &
    pgb=$!
    sleep "$WARMUP"
    sampler_start "$WORK/cpu-$name.samples"
    date +%s.%N >"$WORK/window-$name"
    [ "$name" != steady ] || [ "$PROFILE" != 1 ] || profile_start "$WORK/perf-$name.data"
    wait "$pgb" || { cat "$WORK/pgbench-$name.log" >&2; exit 1; }
    date +%s.%N >>"$WORK/window-$name"
    cores=$(sampler_stop "$WORK/cpu-$name.samples")
    profile_stop
    echo "$cores $(pgbench_tps "$WORK/pgbench-$name.log")"
}

# PROFILE=1: perf record -g of the workers (their pids when the window
# starts) until profile_stop; profile_report prints the top symbols.
profile_start() {  # profile_start FILE
    local pids
    pids=$(lsql "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type LIKE 'campaign replication%'")
    [ -n "$pids" ] || { echo "    PROFILE: no worker to profile" >&2; return 0; }
    # --no-buildid: no build-id pass at the end, whose CPU would delay the
    # last batches of the load and show in their lag.
    perf record -q -g --no-buildid -F "$PROFILE_FREQ" -p "$pids" -o "$1" >"$WORK/perf-record.log" 2>&1 &
    PERF_PID=$!
}
profile_stop() {
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=
}
profile_report() {  # profile_report FILE
    [ -s "$1" ] || { echo "    PROFILE: no profile taken (see $WORK/perf-record.log)"; return 0; }
    echo "    profile of the workers: perf record -g -F $PROFILE_FREQ, $(perf report -i "$1" --stdio --no-children -g none 2>/dev/null |
        sed -nE 's/^# Samples: ([^ ]+) of event.*/\1 samples/p' | head -n1)"
    echo "    top $PROFILE_TOP symbols, self:"
    perf report -i "$1" --stdio --no-children --sort dso,symbol -g none --percent-limit 0.5 2>/dev/null |
        grep -E '^ +[0-9]' | head -n "$PROFILE_TOP" | sed 's/^/    /' || true
    echo "    top $PROFILE_TOP symbols, with children:"
    perf report -i "$1" --stdio --children --sort symbol -g none --percent-limit 2 2>/dev/null |
        grep -E '^ +[0-9]' | head -n "$PROFILE_TOP" | sed 's/^/    /' || true
}

cpu_verdict() { awk -v c="$1" -v g="$2" 'BEGIN { print (c == "-" ? "not measured" : (c <= g ? "goal met" : "ABOVE GOAL")) }'; }

CPU3=- NW3=- TPS3=- V3="not run"
if section 3; then
    echo
    echo "(3) replication workers' CPU, $CPU_CLIENTS clients ingesting as fast as they can into a schema that is not deployed"
    echo "    pgbench -M prepared -c $CPU_CLIENTS -T $((WARMUP + CPU_SECONDS)) (the first $WARMUP s left out); workers sampled every second"
    reset_tables
    read -r CPU3 NW3 TPS3 <<<"$(cpu_under_load idle-worker ingest on)"
    V3=$(cpu_verdict "$CPU3" 0.02)
    echo "    $TPS3 TPS; $NW3 worker(s) used $CPU3 core (goal <= 0.02): $V3"
fi

CPU4=- NW4=- TPS4=- V4="not run" LAG_P50=- LAG_P99=- LAG_MAX=- VL="not run" NLAG=- LAG_N=- LAG_BATCHES=-
if section 4; then
    echo
    echo "(4) replication workers' CPU and replication lag at a steady $RATE one-record ingests a second, continuous mode"
    echo "    pgbench -M prepared -c $CPU_CLIENTS --rate $RATE -T $((WARMUP + CPU_SECONDS)) (workers sampled after the first $WARMUP s),"
    echo "    ingest sessions with synchronous_commit = $STEADY_SYNC_COMMIT"
    start_cluster cloud "$CPORT"
    "${LPSQL[@]}" >/dev/null <<EOF
SET client_min_messages = warning;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$WORK', port '$CPORT', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;
TRUNCATE dem.sampletablestg;
SELECT campaign.deploy('dem:sampleTable');
CREATE SEQUENCE bench_rate_id;
EOF
    cat >"$WORK/rate.pgbench" <<'EOF'
SELECT length(campaign.xtk_ingest('<sampleTableStg id="r' || nextval('bench_rate_id') || '" testcol1="steady load" testcol2="second column with some text" score="1" xtkschema="dem:' || 'sampleTableStg"/>'));
EOF
    own "$WORK/rate.pgbench"
    checkpoint_both
    hist_from=$(lsql "SELECT coalesce(max(id), 0) FROM campaign.replication_history")
    read -r CPU4 NW4 TPS4 <<<"$(cpu_under_load steady rate "$STEADY_SYNC_COMMIT" --rate "$RATE")"
    V4=$(cpu_verdict "$CPU4" 0.2)
    NLAG=$(lsql "SELECT count(*) FROM dem.sampletablestg")
    wait_cloud_rows "$NLAG" 60 || true   # a shortfall is reported below
    lsql "CREATE TABLE bench_lag_cloud (id text, committed timestamptz)" >/dev/null
    "${CPSQL[@]}" -c "COPY (SELECT id, pg_xact_commit_timestamp(xmin) FROM dem.sampletable) TO STDOUT" |
        "${LPSQL[@]}" -c "COPY bench_lag_cloud FROM STDIN"
    # The lag and the batches are those of the window the CPU is measured
    # in (records committed locally, batches started, after the warm-up);
    # the lag over all records, warm-up included, is printed as well.
    { read -r WIN_FROM; read -r WIN_TO; } <"$WORK/window-steady"
    lag_of() {  # lag_of WHERE -> "COUNT P50 P99 MAX" (ms)
        lsql "WITH l AS (SELECT extract(epoch FROM c.committed - pg_xact_commit_timestamp(s.xmin)) AS lag
                           FROM dem.sampletablestg s JOIN bench_lag_cloud c USING (id) WHERE $1)
              SELECT count(*), round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)),
                     round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)), round(1000 * max(lag))
                FROM l" | tr '|' ' '
    }
    read -r LAG_N LAG_ALL_P50 LAG_ALL_P99 LAG_ALL_MAX <<<"$(lag_of true)"
    read -r LAG_WN LAG_P50 LAG_P99 LAG_MAX <<<"$(lag_of "pg_xact_commit_timestamp(s.xmin) BETWEEN to_timestamp($WIN_FROM) AND to_timestamp($WIN_TO)")"
    LAG_BATCHES=$(lsql "SELECT count(*) || ' batches, ' || round(avg(rows), 1) || ' rows and '
                              || round(1000 * extract(epoch FROM avg(finished_at - started_at)), 1) || ' ms per batch on average'
                         FROM campaign.replication_history WHERE id > $hist_from AND outcome = 'success'
                          AND started_at BETWEEN to_timestamp($WIN_FROM) AND to_timestamp($WIN_TO)")
    VL=$(awk -v p="$LAG_P99" 'BEGIN { print (p == "" ? "not measured" : (p < 100 ? "goal met" : "ABOVE GOAL")) }')
    RATE_LAG=$(sed -nE 's/^rate limit schedule lag: avg ([0-9.]+) \(max ([0-9.]+)\) ms/avg \1 ms, max \2 ms/p' "$WORK/pgbench-steady.log")
    echo "    $NLAG records ingested at $TPS4 TPS (asked: $RATE; pgbench's schedule lag ${RATE_LAG:-?}), $LAG_N on the cloud;"
    echo "    after the warm-up: $LAG_WN records, $LAG_BATCHES"
    [ "$LAG_N" = "$NLAG" ] || echo "    WARNING: $NLAG records ingested, $LAG_N on the cloud after 60 s"
    awk -v t="$TPS4" -v r="$RATE" 'BEGIN { exit !(t < 0.95 * r) }' &&
        echo "    WARNING: the machine did not sustain the asked rate: the figures below are for $TPS4/s"
    echo "    $NW4 worker(s) used $CPU4 core (goal <= 0.2): $V4"
    echo "    lag (visible on the cloud - committed locally), after the warm-up: p50 $LAG_P50 ms, p99 $LAG_P99 ms, max $LAG_MAX ms: $VL (goal p99 < 100)"
    echo "    lag of every record, warm-up included: p50 $LAG_ALL_P50 ms, p99 $LAG_ALL_P99 ms, max $LAG_ALL_MAX ms"
    [ "$PROFILE" != 1 ] || profile_report "$WORK/perf-steady.data"
fi

# ---------------------------------------------------------------- summary
echo
echo "== summary"
printf '   %-46s %12s %12s %7s  %s\n' "measure" "campaign" "baseline" "ratio" "verdict (floor/goal)"
if section 1; then
    i=0
    for c in $CLIENT_COUNTS; do
        printf '   %-46s %12s %12s %7s  %s\n' "one-record xtk_ingest vs INSERT, $c client(s)" "${ING_MED[i]}" "${INS_MED[i]}" "${R1[i]}" "${V1[i]} (0.8/0.95)"
        i=$((i + 1))
    done
fi
if section 2; then
    printf '   %-46s %12s %12s %7s  %s\n' "${NROWS}-row collection vs COPY (ms, best)" "$ING_BEST" "$COPY_BEST" "$R2" "$V2 (0.5/0.8)"
    printf '   %-46s %12s %12s\n' "   (rows/s)" "$ING_RPS" "$COPY_RPS"
fi
section 3 && printf '   %-46s %12s %12s %7s  %s\n' "workers' CPU, $CPU_CLIENTS clients, not deployed (core)" "$CPU3" "" "" "$V3 (-/0.02)"
if section 4; then
    printf '   %-46s %12s %12s %7s  %s\n' "workers' CPU at ${TPS4}/s replicated (core)" "$CPU4" "" "" "$V4 (-/0.2)"
    printf '   %-46s %12s %12s %7s  %s\n' "lag at ${TPS4}/s, p99 (ms)" "$LAG_P99" "" "" "$VL (-/100)"
    printf '   %-46s %12s\n' "   p50 / max (ms)" "$LAG_P50 / $LAG_MAX"
fi
NOISY_NOTE=
[ "$NOISY1" = no ] || NOISY_NOTE="; pgbench rounds were NOISY"
echo "   load average at start: $LOAD_START, at end: $(load_average)$NOISY_NOTE"

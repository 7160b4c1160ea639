#!/usr/bin/env bash
# bench/replication.sh — replication speed, side by side (SPEC §9), in one run:
#
#   (1) drain of a $NROWS-row backlog: replication stopped, $NROWS inserts
#       staged ($NCOLL collections through xtk_ingest), then the time of
#       SELECT campaign.replicate_now('dem:sampleTable') (psql \timing; it
#       returns when the worker has applied and committed every batch),
#       versus the baseline: the same rows copied between the same two
#       servers with
#         psql local -c "COPY (SELECT _uuid, id, testcol1, testcol2, score
#                              FROM dem.sampletablestg) TO STDOUT" |
#         psql cloud -c "COPY bench_target (...) FROM STDIN"
#       into a fresh cloud table made with CREATE TABLE ... (LIKE
#       dem.sampletable INCLUDING ALL): the same columns, identity primary key
#       and unique indexes (on id and on _uuid) as the replicated table; the
#       script checks that the two index sets are the same.  Best of $REPEAT
#       rounds, the order of the two alternating; ratio COPY_time/drain_time
#       (floor 0.5, goal 0.8).
#   (2) replication lag at a steady unitary load: continuous mode, one client
#       (pgbench -R $LAG_RATE -T $LAG_SECONDS) doing one one-record
#       xtk_ingest per transaction.  The lag of a record is the commit time
#       of the cloud transaction that made it visible minus the commit time
#       of its local ingest transaction: both servers run with
#       track_commit_timestamp = on and share the machine clock, and
#       pg_xact_commit_timestamp(xmin) of the staging row and of the cloud
#       row give the two.  As a cross-check, the cloud table gets a column
#       "arrived timestamptz DEFAULT clock_timestamp()" (deploy never drops
#       columns) and each record carries its ingest clock_timestamp() in
#       testcol2: arrived - testcol2 is printed too.  p50/p99/max
#       (floor p99 < 2 s, goal p99 < 0.5 s).
#   (3) the worker's memory while draining the backlog of (1): its
#       /proc/<pid>/status sampled every 50 ms; peak RssAnon (private memory:
#       what a batch costs) is the figure (goal < 64 MB); peak VmRSS and
#       VmHWM (reset before each drain through /proc/<pid>/clear_refs) are
#       printed as well, but they include the shared_buffers pages the worker
#       touched (RssShmem), which are not its own.
#
# Usage:  bash bench/replication.sh       (as root or as postgres, or any
#                                          non-root user that can initdb)
# Knobs (environment): NROWS=1000000 (a multiple of 10000) REPEAT=2
#                      LAG_RATE=50 LAG_SECONDS=20
#                      DRAIN_TIMEOUT=300 (s; a drain still running then is
#                      stopped by cutting the worker's cloud connection, and
#                      reported as a bound; no further round)
#                      BATCH_SIZE= BATCH_MEMORY= (campaign.batch_size/_memory
#                      of the local server; empty: the defaults)
#                      KEEP=1 (keep the scratch dir) PG_CONFIG=...
#
# PG_CONFIG may name the pg_config of a relocated copy of the PostgreSQL
# installation (cp -a /usr/lib/postgresql/15 and /usr/share/postgresql/15
# under one prefix, then the build's campaign.so, .control and .sql copied
# into it): the servers then run that copy's build, which benches a build
# without installing it over the shared one.
#
# The extension must be installed first (make && make install).  The script
# starts two scratch clusters (initdb as postgres when run as root) in a temp
# dir, on free ports, each listening on a unix socket in that dir only, and
# stops them at exit: "local" (shared_preload_libraries = 'campaign', whose
# worker replicates database postgres) and "cloud" (plain PostgreSQL, which
# is all the cloud side needs).  Otherwise both have the same settings:
# fsync and synchronous_commit on (defaults), shared_buffers = 256MB,
# max_wal_size = 4GB, track_commit_timestamp = on.  Before each timed run
# both servers take a CHECKPOINT, the cloud tables are empty and the staging
# table has been vacuumed (so that neither side pays for setting hint bits).
set -euo pipefail

NROWS=${NROWS:-1000000}
REPEAT=${REPEAT:-2}
LAG_RATE=${LAG_RATE:-50}
LAG_SECONDS=${LAG_SECONDS:-20}
BATCH_SIZE=${BATCH_SIZE:-}
BATCH_MEMORY=${BATCH_MEMORY:-}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
COLL=10000
NCOLL=$((NROWS / COLL))
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ "$NCOLL" -lt 1 ] || [ $((NCOLL * COLL)) -ne "$NROWS" ]; then
    echo "bench/replication.sh: NROWS must be a multiple of $COLL" >&2
    exit 1
fi
bench_setup bench/replication.sh

# ---------------------------------------------------------------- clusters
start_pair 55500 55599 "$(drain_conf)"
setup_campaign "$CPORT"
csql "CREATE TABLE bench_target (LIKE dem.sampletable INCLUDING ALL)"

# The baseline's table must carry the same columns and indexes.
same_shape dem.sampletable bench_target

bench_banner "campaign replication bench" "$(lsql "SHOW server_version")"
echo "   scratch clusters in $WORK: local port $LPORT (campaign worker), cloud port $CPORT; unix sockets"
echo "   both: shared_buffers=256MB, max_wal_size=4GB, fsync=on, synchronous_commit=on, track_commit_timestamp=on"
echo "   campaign.batch_size=$(lsql "SHOW campaign.batch_size"), campaign.batch_memory=$(lsql "SHOW campaign.batch_memory")"
echo "   cloud table dem.sampletable and baseline table bench_target: ($SHAPE_COLS)"
printf '%s\n' "$SHAPE_INDEXES" | sed 's/^/     index: /'

WPID=$(worker_pid)
[ -n "$WPID" ] || fail "no campaign replication worker running on the local server"

# Stage NROWS inserts: NCOLL collections of COLL records, one transaction each.
stage_backlog() {
    local c sqlf=$WORK/stage.sql
    : >"$sqlf"
    for c in $(seq 0 $((NCOLL - 1))); do
        echo "SELECT length(campaign.xtk_ingest((SELECT '<sampleTableStg-collection xtkschema=\"dem:sampleTableStg\">' || string_agg(format('<sampleTableStg id=\"%s\" testcol1=\"value %s\" testcol2=\"other %s\" score=\"%s\"/>', i, i, i, i), '') || '</sampleTableStg-collection>' FROM generate_series($((c * COLL + 1)), $(((c + 1) * COLL))) i)));" >>"$sqlf"
    done
    own "$sqlf"
    "${LPSQL[@]}" -f "$sqlf" >/dev/null
}


run_copy() {  # -> ms
    local t0 t1 n
    t0=$(now)
    "${LPSQL[@]}" -c "COPY (SELECT _uuid, id, testcol1, testcol2, score FROM dem.sampletablestg) TO STDOUT" |
        "${CPSQL[@]}" -c "COPY bench_target (_uuid, id, testcol1, testcol2, score) FROM STDIN"
    t1=$(now)
    n=$(csql "SELECT count(*) FROM bench_target")
    [ "$n" = "$NROWS" ] || fail "COPY loaded $n rows, not $NROWS"
    elapsed_ms "$t0" "$t1"
}

# Stop a drain that is taking too long: cut the worker's cloud connection (its
# batch fails and rolls back on both sides; the schema is in stopped mode, so
# the worker then stays idle) and wait until the worker is idle.
WORKER_IDLE=1
abort_drain() {
    local i state
    WORKER_IDLE=0
    for i in $(seq 1 1200); do
        csql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'campaign replication worker'" >/dev/null
        state=$(lsql "SELECT state FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'")
        if [ "$state" = idle ]; then WORKER_IDLE=1; return; fi
        sleep 0.1
    done
}

run_drain() {  # sets DRAIN_RESULT_MS, MEM_IDLE, MEM_RSS, MEM_ANON, MEM_SHM, MEM_HWM, DRAIN_DETAIL
    local out count n hist_from
    WPID=$(worker_pid)
    [ -n "$WPID" ] || fail "no campaign replication worker running on the local server"
    hist_from=$(lsql "SELECT coalesce(max(id), 0) FROM campaign.replication_history")
    MEM_IDLE=$(sed -nE 's/^RssAnon:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$WPID/status")
    start_sampler "$WPID" "$WORK/mem.out"
    DRAIN_TIMED_OUT=0
    out=$(timed_drain "$DRAIN_TIMEOUT" 2>"$WORK/drain.err") || DRAIN_TIMED_OUT=1
    MEM_HWM=$(hwm_kb "$WPID")
    stop_sampler
    read -r MEM_RSS MEM_ANON MEM_SHM <"$WORK/mem.out"
    if [ "$DRAIN_TIMED_OUT" = 1 ]; then
        grep -q 'statement timeout' "$WORK/drain.err" || { cat "$WORK/drain.err" >&2; exit 1; }
        DRAIN_RESULT_MS=timeout
        DRAIN_DONE_ROWS=$(csql "SELECT count(*) FROM dem.sampletable")
        abort_drain
    else
        count=$(timed_value <<<"$out")
        DRAIN_RESULT_MS=$(timing_ms <<<"$out")
        [ "$count" = "$NROWS" ] || fail "replicate_now returned $count, not $NROWS"
        n=$(csql "SELECT count(*) FROM dem.sampletable")
        [ "$n" = "$NROWS" ] || fail "the cloud has $n rows after the drain, not $NROWS"
        n=$(csql "SELECT count(DISTINCT id) FROM dem.sampletable")
        [ "$n" = "$NROWS" ] || fail "the cloud has $n distinct ids after the drain, not $NROWS"
    fi
    DRAIN_DETAIL=$(lsql "SELECT CASE WHEN count(*) = 0 THEN 'no batch finished' ELSE count(*) || ' batches of ' || round(avg(rows)) || ' rows / '
                                || round(avg(bytes) / 1048576.0, 1) || ' MB (COPY text); per batch '
                                || round(1000 * extract(epoch FROM min(finished_at - started_at))) || '/'
                                || round(1000 * extract(epoch FROM avg(finished_at - started_at))) || '/'
                                || round(1000 * extract(epoch FROM max(finished_at - started_at)))
                                || ' ms min/avg/max, sum '
                                || round(1000 * extract(epoch FROM sum(finished_at - started_at))) || ' ms' END
                           FROM campaign.replication_history WHERE id > $hist_from AND outcome = 'success'")
}

# ---------------------------------------------------------------- (1) + (3) drain
echo
echo "(1) drain of a $NROWS-row backlog ($NCOLL collections of $COLL staged inserts, replication stopped)"
echo "    campaign: time of SELECT campaign.replicate_now('dem:sampleTable') (returns when all is applied)"
echo "    baseline: psql local COPY (SELECT ...) TO STDOUT | psql cloud COPY bench_target FROM STDIN"
echo "    best of $REPEAT rounds, order alternating"
printf '    %-6s %12s %12s %12s %10s %10s %10s\n' round "stage ms" "drain ms" "COPY ms" "RssAnon MB" "VmRSS MB" "VmHWM MB"
DRAIN_MS=() COPY_MS=() IDLE=() ANON=() RSS=() HWM=() DETAILS=()
for r in $(seq 1 "$REPEAT"); do
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    csql "TRUNCATE dem.sampletable, bench_target" >/dev/null
    t0=$(now); stage_backlog; t1=$(now)
    stage_ms=$(elapsed_ms "$t0" "$t1")
    lsql "VACUUM ANALYZE dem.sampletablestg" >/dev/null
    pend=$(lsql "SELECT pending FROM campaign.staging_status WHERE schema_name = 'dem:sampleTable'")
    [ "$pend" = "$NROWS" ] || fail "$pend rows pending after staging, not $NROWS"
    if [ $((r % 2)) -eq 1 ]; then
        checkpoint_both; c=$(run_copy)
        checkpoint_both; run_drain
    else
        checkpoint_both; run_drain
        checkpoint_both; c=$(run_copy)
    fi
    d=$DRAIN_RESULT_MS
    DRAIN_MS+=("$d") COPY_MS+=("$c") IDLE+=("$MEM_IDLE") ANON+=("$MEM_ANON") RSS+=("$MEM_RSS") HWM+=("$MEM_HWM")
    printf '    %-6s %12s %12s %12s %10s %10s %10s\n' "$r" "$stage_ms" "$d" "$c" \
        "$(mb "$MEM_ANON")" "$(mb "$MEM_RSS")" "$(mb "$MEM_HWM")"
    if [ "$DRAIN_TIMED_OUT" = 1 ]; then
        echo "           drain: TIMED OUT after ${DRAIN_TIMEOUT} s (DRAIN_TIMEOUT), $DRAIN_DONE_ROWS of $NROWS rows on the cloud then; worker's cloud connection cut to stop it"
    fi
    echo "           drain: $DRAIN_DETAIL"
    echo "           worker RssAnon before the drain $(mb "$MEM_IDLE") MB, peak RssShmem $(mb "$MEM_SHM") MB"
    # A drain that timed out would time out again: no further round.
    [ "$DRAIN_TIMED_OUT" = 0 ] || break
done
COPY_BEST=$(printf '%s\n' "${COPY_MS[@]}" | sort -g | head -n1)
DRAIN_BEST=$(printf '%s\n' "${DRAIN_MS[@]}" | grep -v timeout | sort -g | head -n1 || true)
if [ -n "$DRAIN_BEST" ]; then
    R1=$(ratio "$COPY_BEST" "$DRAIN_BEST")
    V1=$(verdict "$R1" 0.5 0.8)
    DRAIN_RPS=$(per_s "$NROWS" "$DRAIN_BEST")
else
    # Only a bound: the drain took longer than DRAIN_TIMEOUT.
    DRAIN_BEST=">$((DRAIN_TIMEOUT * 1000))"
    R1="<$(ratio "$COPY_BEST" "$((DRAIN_TIMEOUT * 1000))")"
    V1=$(verdict "${R1#<}" 0.5 0.8)
    [ "$V1" = "BELOW FLOOR" ] || V1="unknown (timed out)"
    DRAIN_RPS="<$(awk -v n="$NROWS" -v s="$DRAIN_TIMEOUT" 'BEGIN { printf "%.0f", n / s }')"
fi
printf '    %-6s %12s %12s %12s\n' best "" "$DRAIN_BEST" "$COPY_BEST"
COPY_RPS=$(per_s "$NROWS" "$COPY_BEST")
echo "    rows/s: drain $DRAIN_RPS, COPY $COPY_RPS"
echo "    ratio COPY_time/drain_time = $R1  (floor 0.50, goal 0.80): $V1"

PEAK_ANON=$(printf '%s\n' "${ANON[@]}" | sort -g | tail -n1)
PEAK_RSS=$(printf '%s\n' "${RSS[@]}" | sort -g | tail -n1)
PEAK_HWM=$(printf '%s\n' "${HWM[@]}" | sort -g | tail -n1)
V3=$(awk -v k="$PEAK_ANON" 'BEGIN { print (k < 64 * 1024 ? "goal met" : "ABOVE GOAL") }')
[ "$DRAIN_TIMED_OUT" = 0 ] || V3="$V3 so far (drain timed out)"
echo
echo "(3) worker memory while draining (pid sampled every 50 ms, peak over the $REPEAT drains)"
echo "    RssAnon (private) $(mb "$PEAK_ANON") MB (before the drains: $(mb "${IDLE[0]}") MB): $V3 (goal < 64 MB)"
echo "    VmRSS $(mb "$PEAK_RSS") MB, VmHWM $(mb "$PEAK_HWM") MB (both include shared_buffers pages touched)"

# ---------------------------------------------------------------- (2) lag
echo
echo "(2) replication lag at a steady unitary load: continuous mode, 1 client, pgbench -R $LAG_RATE -T $LAG_SECONDS,"
echo "    one one-record xtk_ingest per transaction; lag = cloud commit time - local commit time"
LAG_P50=- LAG_P99=- LAG_MAX=- V2="not measured"
if [ "$WORKER_IDLE" = 0 ]; then
    echo "    skipped: the worker is still busy with the backlog of (1)"
else
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    csql "TRUNCATE dem.sampletable" >/dev/null
    csql "ALTER TABLE dem.sampletable ADD COLUMN arrived timestamptz DEFAULT clock_timestamp()" >/dev/null
    lsql "CREATE SEQUENCE bench_lag_id" >/dev/null
    checkpoint_both
    hist_from=$(lsql "SELECT coalesce(max(id), 0) FROM campaign.replication_history")
    lsql "SELECT campaign.start_replication('dem:sampleTable')" >/dev/null
    cat >"$WORK/lag.pgbench" <<'EOF'
SELECT length(campaign.xtk_ingest('<sampleTableStg id="lag' || nextval('bench_lag_id') || '" testcol1="unitary load" testcol2="' || clock_timestamp() || '" score="1" xtkschema="dem:' || 'sampleTableStg"/>'));
EOF
    own "$WORK/lag.pgbench"
    sleep 1
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$LPORT" -c 1 -j 1 -R "$LAG_RATE" -T "$LAG_SECONDS" \
        -f "$WORK/lag.pgbench" postgres >"$WORK/lag-pgbench.log" 2>&1 || { cat "$WORK/lag-pgbench.log" >&2; exit 1; }
    NLAG=$(lsql "SELECT count(*) FROM dem.sampletablestg")
    wait_cloud_rows "$NLAG" 30 || true   # a shortfall is reported below
    lsql "CREATE TABLE bench_lag_cloud (id text, committed timestamptz, arrived timestamptz)" >/dev/null
    "${CPSQL[@]}" -c "COPY (SELECT id, pg_xact_commit_timestamp(xmin), arrived FROM dem.sampletable) TO STDOUT" |
        "${LPSQL[@]}" -c "COPY bench_lag_cloud FROM STDIN"
    LAG=$(lsql "WITH l AS (
                   SELECT extract(epoch FROM c.committed - pg_xact_commit_timestamp(s.xmin)) AS visible,
                          extract(epoch FROM c.arrived - s.testcol2::timestamptz) AS arrived
                     FROM dem.sampletablestg s JOIN bench_lag_cloud c USING (id))
                SELECT count(*),
                       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY visible))::text,
                       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY visible))::text,
                       round(1000 * max(visible))::text,
                       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY arrived))::text,
                       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY arrived))::text,
                       round(1000 * max(arrived))::text
                  FROM l" | tr '|' ' ')
    read -r LAG_N LAG_P50 LAG_P99 LAG_MAX ARR_P50 ARR_P99 ARR_MAX <<<"$LAG"
    LAG_BATCHES=$(lsql "SELECT count(*) || ' batches, ' || round(avg(rows), 2) || ' rows per batch, '
                               || round(1000 * extract(epoch FROM avg(finished_at - started_at)), 1) || ' ms per batch on average'
                          FROM campaign.replication_history WHERE id > $hist_from AND outcome = 'success'")
    TPS=$(pgbench_tps "$WORK/lag-pgbench.log")
    INGEST_LAT=$(sed -nE 's/^latency average = ([0-9.]+) ms/\1/p' "$WORK/lag-pgbench.log")
    [ "$LAG_N" = "$NLAG" ] || echo "    WARNING: $NLAG records ingested, $LAG_N on the cloud after 30 s"
    V2=$(awk -v p="$LAG_P99" 'BEGIN { print (p < 500 ? "goal met" : (p < 2000 ? "above floor, below goal" : "BELOW FLOOR")) }')
    echo "    $NLAG records ingested at $TPS TPS (ingest latency ${INGEST_LAT} ms), $LAG_N on the cloud; $LAG_BATCHES"
    echo "    lag (visible on the cloud - committed locally): p50 $LAG_P50 ms, p99 $LAG_P99 ms, max $LAG_MAX ms: $V2 (floor p99 < 2000, goal p99 < 500)"
    echo "    cross-check (cloud row's arrived default - ingest clock_timestamp()): p50 $ARR_P50 ms, p99 $ARR_P99 ms, max $ARR_MAX ms"
fi

# ---------------------------------------------------------------- summary
echo
echo "== summary"
printf '   %-44s %12s %12s %7s  %s\n' "measure" "campaign" "baseline" "ratio" "verdict (floor/goal)"
printf '   %-44s %12s %12s %7s  %s\n' "drain ${NROWS}-row backlog vs COPY|COPY (ms)" "$DRAIN_BEST" "$COPY_BEST" "$R1" "$V1 (0.5/0.8)"
printf '   %-44s %12s %12s\n' "   (rows/s)" "$DRAIN_RPS" "$COPY_RPS"
printf '   %-44s %12s %12s %7s  %s\n' "lag at ${LAG_RATE}/s unitary ingest, p99 (ms)" "$LAG_P99" "" "" "$V2 (2000/500)"
printf '   %-44s %12s\n' "   p50 / max (ms)" "$LAG_P50 / $LAG_MAX"
printf '   %-44s %12s %12s %7s  %s\n' "worker RssAnon peak while draining (MB)" "$(mb "$PEAK_ANON")" "" "" "$V3 (bounded/64)"
printf '   %-44s %12s\n' "   VmRSS / VmHWM incl. shared buffers (MB)" "$(mb "$PEAK_RSS") / $(mb "$PEAK_HWM")"

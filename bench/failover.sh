#!/usr/bin/env bash
# bench/failover.sh — what the standby wait (campaign.synchronized_standby_slots,
# issue 16) costs, with a real streaming standby, in one run:
#
#   (1) ingest and replication at full load: replication continuous,
#       pgbench -c $CLIENTS -T $SECONDS_PER_RUN, one one-record xtk_ingest
#       per transaction: ingest TPS, and the replication lag of each record
#       (commit time of the cloud transaction that made it visible minus
#       that of its local ingest transaction; track_commit_timestamp on
#       both servers, one machine clock), p50/p99/max;
#   (2) drain of a backlog: replication stopped, $NROWS inserts staged (10
#       collections), the standby left to catch up with them (the time it
#       took is printed), then the time of campaign.replicate_now() (it
#       returns when everything is committed on the cloud), in rows/s.
# Each measure is taken with the wait disabled (setting empty) and enabled
# (the standby's slot listed), alternating the order over $REPEAT rounds;
# the medians are printed with their ratio (enabled/disabled).  Every run
# checks that the cloud ends with exactly the staged records.
#
# Usage:  bash bench/failover.sh   (as root or as postgres, or any non-root
#                                   user that can initdb)
# Knobs: NROWS=100000 (a multiple of 10) SECONDS_PER_RUN=15 CLIENTS=2
#        REPEAT=3 KEEP=1 PG_CONFIG=...
#
# Three scratch clusters (bench/lib.sh's start_cluster settings: fsync and
# synchronous_commit on, shared_buffers 256MB, track_commit_timestamp on),
# unix sockets only: "cloud", "primary" (campaign preloaded, a physical slot
# "standby1") and "standby" (pg_basebackup -R -S standby1 of the primary,
# streaming, hot standby).  The extension must be installed first.
set -euo pipefail

NROWS=${NROWS:-100000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
CLIENTS=${CLIENTS:-2}
REPEAT=${REPEAT:-3}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ $((NROWS % 10)) -ne 0 ] || [ "$NROWS" -lt 10 ]; then
    echo "bench/failover.sh: NROWS must be a multiple of 10" >&2
    exit 1
fi
bench_setup bench/failover.sh
mapfile -t PORTS < <(free_ports 3 55600 55699)
[ "${#PORTS[@]}" -eq 3 ] || exit 1
PPORT=${PORTS[0]} SPORT=${PORTS[1]} CPORT=${PORTS[2]}

bench_at_exit "$WORK/cloud" "$WORK/primary" "$WORK/standby"
# The primary is the local server of bench/lib.sh.
bench_psql "$PPORT" "$CPORT"

# ---------------------------------------------------------------- clusters
start_cluster cloud "$CPORT"
start_cluster primary "$PPORT" "shared_preload_libraries = 'campaign'
campaign.naptime = '100ms'"
lsql "SELECT pg_create_physical_replication_slot('standby1', true)" >/dev/null
as_owner "$BINDIR/pg_basebackup" -h "$WORK" -p "$PPORT" -D "$WORK/standby" -R -S standby1 --checkpoint=fast
as_owner sed -i "s/^port = .*/port = $SPORT/" "$WORK/standby/postgresql.conf"
as_owner "$BINDIR/pg_ctl" -D "$WORK/standby" -l "$WORK/standby.log" -w start >/dev/null ||
    { cat "$WORK/standby.log" >&2; exit 1; }
for _ in $(seq 1 100); do
    [ "$(lsql "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby1'")" = t ] && break
    sleep 0.1
done
[ "$(lsql "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby1'")" = t ] ||
    fail "the standby does not stream"

setup_campaign "$CPORT"
lsql "CREATE SEQUENCE bench_id"

bench_banner "campaign standby-wait bench" "$(lsql "SHOW server_version")"
echo "   scratch clusters in $WORK: primary port $PPORT (campaign worker), standby port $SPORT"
echo "   (streaming, slot standby1, hot standby), cloud port $CPORT; unix sockets; load average $(load_average)"
echo "   all: shared_buffers=256MB, max_wal_size=4GB, fsync=on, synchronous_commit=on, track_commit_timestamp=on"

set_wait() {  # set_wait on|off
    if [ "$1" = on ]; then
        lsql "ALTER SYSTEM SET campaign.synchronized_standby_slots = 'standby1'" >/dev/null
    else
        lsql "ALTER SYSTEM RESET campaign.synchronized_standby_slots" >/dev/null
    fi
    lsql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
}

reset_tables() {
    lsql "SELECT campaign.stop_replication('dem:sampleTable')" >/dev/null
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    csql "TRUNCATE dem.sampletable" >/dev/null
    checkpoint_both
}


cat >"$WORK/ingest.pgbench" <<'EOF'
SELECT length(campaign.xtk_ingest('<sampleTableStg id="r' || nextval('bench_id') || '" testcol1="load" testcol2="x" score="1" xtkschema="dem:' || 'sampleTableStg"/>'));
EOF
own "$WORK/ingest.pgbench"

run_load() {  # sets TPS LAG_P50 LAG_P99 LAG_MAX
    local n
    reset_tables
    lsql "SELECT campaign.start_replication('dem:sampleTable')" >/dev/null
    as_owner "$BINDIR/pgbench" -n -h "$WORK" -p "$PPORT" -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" \
        -f "$WORK/ingest.pgbench" postgres >"$WORK/load.log" 2>&1 || { cat "$WORK/load.log" >&2; exit 1; }
    TPS=$(pgbench_tps "$WORK/load.log" 0)
    n=$(lsql "SELECT count(*) FROM dem.sampletablestg")
    wait_cloud_rows "$n" 120 || fail "the cloud has $(csql "SELECT count(*) FROM dem.sampletable") records, not $n"
    lsql "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_cloud; CREATE TABLE bench_cloud (id text, committed timestamptz)" >/dev/null
    "${CPSQL[@]}" -c "COPY (SELECT id, pg_xact_commit_timestamp(xmin) FROM dem.sampletable) TO STDOUT" |
        "${LPSQL[@]}" -c "COPY bench_cloud FROM STDIN"
    read -r LAG_P50 LAG_P99 LAG_MAX <<<"$(lsql "WITH l AS (SELECT extract(epoch FROM c.committed - pg_xact_commit_timestamp(s.xmin)) AS v
                                                 FROM dem.sampletablestg s JOIN bench_cloud c USING (id))
        SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY v))::text, round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY v))::text,
               round(1000 * max(v))::text FROM l" | tr '|' ' ')"
    [ "$(csql "SELECT count(DISTINCT id) FROM dem.sampletable")" = "$n" ] ||
        fail "the cloud does not hold each record once"
}

run_drain() {  # sets DRAIN_RPS CATCHUP_MS
    local c out t0
    reset_tables
    for c in $(seq 0 9); do
        lsql "SELECT length(campaign.xtk_ingest((SELECT '<sampleTableStg-collection xtkschema=\"dem:sampleTableStg\">' || string_agg(format('<sampleTableStg id=\"d%s\" testcol1=\"value %s\" testcol2=\"other %s\" score=\"%s\"/>', i, i, i, i), '') || '</sampleTableStg-collection>' FROM generate_series($((c * NROWS / 10 + 1)), $(((c + 1) * NROWS / 10))) i)))" >/dev/null
    done
    lsql "VACUUM ANALYZE dem.sampletablestg" >/dev/null
    # The standby first receives the staged rows (their WAL): the drain
    # then measures what the wait adds per batch, not that catch-up.
    t0=$(now)
    for _ in $(seq 1 1200); do
        [ "$(lsql "SELECT restart_lsn >= pg_current_wal_flush_lsn() FROM pg_replication_slots WHERE slot_name = 'standby1'")" = t ] && break
        sleep 0.1
    done
    CATCHUP_MS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
    out=$(timed_drain)
    [ "$(timed_value <<<"$out")" = "$NROWS" ] || fail "replicate_now did not replicate $NROWS rows: $out"
    [ "$(csql "SELECT count(DISTINCT id) FROM dem.sampletable")" = "$NROWS" ] ||
        fail "the cloud does not hold the $NROWS records once each"
    DRAIN_RPS=$(per_s "$NROWS" "$(timing_ms <<<"$out")")
}

declare -A R
echo
printf '   %-6s %-5s %10s %10s %10s %10s %12s %12s\n' round wait "ingest TPS" "lag p50" "lag p99" "lag max" "drain rows/s" "catch-up ms"
for r in $(seq 1 "$REPEAT"); do
    if [ $((r % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
    for w in $order; do
        set_wait "$w"
        run_load
        run_drain
        R[$w,tps]+="$TPS " R[$w,p50]+="$LAG_P50 " R[$w,p99]+="$LAG_P99 " R[$w,max]+="$LAG_MAX " R[$w,drain]+="$DRAIN_RPS "
        printf '   %-6s %-5s %10s %8s ms %8s ms %8s ms %12s %12s\n' "$r" "$w" "$TPS" "$LAG_P50" "$LAG_P99" "$LAG_MAX" "$DRAIN_RPS" "$CATCHUP_MS"
    done
done
failed=$(lsql "SELECT count(*) FROM campaign.replication_history WHERE outcome = 'failed'")

med() { printf '%s\n' $1 | median 0; }
echo
echo "== summary (medians of $REPEAT rounds; load average $(load_average))"
printf '   %-40s %12s %12s %7s\n' measure "wait off" "wait on" "on/off"
for m in tps p50 p99 drain; do
    case $m in
        tps) label="ingest TPS ($CLIENTS clients, replicating)" ;;
        p50) label="replication lag p50 (ms)" ;;
        p99) label="replication lag p99 (ms)" ;;
        drain) label="drain of $NROWS staged rows (rows/s)" ;;
    esac
    a=$(med "${R[off,$m]}") b=$(med "${R[on,$m]}")
    printf '   %-40s %12s %12s %7s\n' "$label" "$a" "$b" "$(ratio "$b" "$a")"
done
echo "   failed batches: $failed"

#!/usr/bin/env bash
# bench/pool.sh — the pool of replication workers (SPEC §12, issue 10), in
# one run: the same backlog spread over 4 schemas drained with
# campaign.max_workers = 1 and with campaign.max_workers = 2.
#
#   Each round: replication of the 4 schemas stopped, $NROWS keyed upserts of
#   new keys staged in each (xtk_ingest_ext collections of $COLL records),
#   the cloud tables emptied, a CHECKPOINT on both servers; then the 4
#   schemas started at once and the clock runs until campaign.staging_status
#   shows nothing pending in any of them (the last batch committed locally,
#   after the cloud).  Every round then checks exactly once: each cloud
#   table holds $NROWS rows with $NROWS distinct keys, and no batch failed.
#   Rounds alternate 1, 2, 2, 1, ... ($ROUNDS of each); the local server is
#   restarted when max_workers changes (it is a postmaster setting).
#   Ratio: median drain time with 1 worker / with 2 (floor 1.3, goal 1.7).
#
# Usage:  bash bench/pool.sh        (as root or as postgres, or any non-root
#                                    user that can initdb)
# Knobs (environment): NROWS=100000 (per schema) COLL=5000 ROUNDS=2
#                      KEEP=1 (keep the scratch dir) PG_CONFIG=...
#
# The extension must be installed first (make && make install).  Two scratch
# clusters (bench/lib.sh's start_cluster: fsync and synchronous_commit on,
# shared_buffers 256MB) on free ports, unix sockets in the scratch dir only,
# stopped at exit.  Both servers and both workers share the machine's CPUs:
# on 2 cores a drain keeps the worker, its cloud backend and the WAL flushes
# of both servers busy, so the pool's gain is bounded by what is left idle
# by one worker (its waits on the cloud's answers and commits).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup pool.sh
NROWS=${NROWS:-100000}
COLL=${COLL:-5000}
ROUNDS=${ROUNDS:-2}

start_pair 55600 55699 "shared_preload_libraries = 'campaign'
campaign.staging_retention = 0"

bench_banner "pool of replication workers" "$(lsql 'SHOW server_version')"
SCHEMAS="pool1 pool2 pool3 pool4"
lsql "CREATE EXTENSION campaign CASCADE"
lsql "CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$WORK', port '$CPORT', dbname 'postgres')"
lsql "CREATE USER MAPPING FOR PUBLIC SERVER ffda"
for s in $SCHEMAS; do
    lsql "SELECT campaign.register_schema(\$x\$<srcSchema name=\"$s\" namespace=\"dem\">
  <element name=\"$s\" autopk=\"true\" autouuid=\"true\" autoStg=\"true\">
    <key name=\"id\" internal=\"true\"><keyfield xpath=\"@id\"/></key>
    <attribute name=\"id\" type=\"string\" length=\"20\"/>
    <attribute name=\"testcol1\" type=\"string\" length=\"255\"/>
    <attribute name=\"score\" type=\"long\"/>
  </element>
</srcSchema>\$x\$)" >/dev/null
    lsql "SELECT campaign.deploy('dem:$s')" >/dev/null
done
echo "4 schemas of keyed upserts, $NROWS new keys each ($((4 * NROWS)) changes a round), collections of $COLL"
echo "load before: $(load_average)"

set_workers() {
    lsql "ALTER SYSTEM SET campaign.max_workers = $1" >/dev/null
    as_owner "$BINDIR/pg_ctl" -D "$WORK/local" -l "$WORK/local.log" -w -m fast restart >/dev/null
    until [ "$(lsql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'")" = "$1" ]; do
        sleep 0.1
    done
}

drain() {  # drain ROUND: prints the seconds
    local round=$1 s t0 t1
    for s in $SCHEMAS; do lsql "SELECT campaign.stop_replication('dem:$s')" >/dev/null; done
    for s in $SCHEMAS; do
        lsql "SELECT campaign.xtk_ingest_ext(doc) FROM (
                SELECT '<${s}Stg-collection xtkschema=\"dem:${s}Stg\">'
                       || string_agg(format('<${s}Stg _key=\"@id\" id=\"r${round}k%s\" testcol1=\"value %s\" score=\"%s\"/>', g, g, g), '')
                       || '</${s}Stg-collection>' AS doc
                  FROM generate_series(1, $NROWS) g GROUP BY (g - 1) / $COLL) c" >/dev/null
        csql "TRUNCATE dem.$s"
    done
    checkpoint_both
    t0=$(now)
    for s in $SCHEMAS; do lsql "SELECT campaign.start_replication('dem:$s')" >/dev/null; done
    lsql "DO \$\$ BEGIN
            WHILE (SELECT sum(pending) FROM campaign.staging_status WHERE schema_name LIKE 'dem:pool%') > 0 LOOP
              PERFORM pg_sleep(0.05);
            END LOOP; END \$\$"
    t1=$(now)
    for s in $SCHEMAS; do
        got=$(csql "SELECT count(*) || '/' || count(DISTINCT id) FROM dem.$s")
        [ "$got" = "$NROWS/$NROWS" ] || fail "round $round: dem.$s holds $got rows/keys, not $NROWS"
    done
    failed=$(lsql "SELECT count(*) FROM campaign.replication_history WHERE outcome <> 'success'")
    [ "$failed" = 0 ] || fail "$failed failed batches"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

T1=() T2=()
current=0 round=0
for r in $(seq 1 "$ROUNDS"); do
    for w in $([ $((r % 2)) = 1 ] && echo "1 2" || echo "2 1"); do
        [ "$current" = "$w" ] || { set_workers "$w"; current=$w; }
        round=$((round + 1))
        t=$(drain "$round")
        echo "round $round: max_workers = $w: drained $((4 * NROWS)) changes in $t s (every row once)"
        if [ "$w" = 1 ]; then T1+=("$t"); else T2+=("$t"); fi
    done
done
m1=$(printf '%s\n' "${T1[@]}" | median 2)
m2=$(printf '%s\n' "${T2[@]}" | median 2)
r=$(ratio "$m1" "$m2")
echo "load after: $(load_average)"
echo "median drain: 1 worker $m1 s, 2 workers $m2 s"
echo "RATIO 2 workers vs 1: $r (floor 1.3, goal 1.7): $(verdict "$r" 1.3 1.7)"

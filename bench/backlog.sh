#!/usr/bin/env bash
# bench/backlog.sh — a large keyed backlog (issue 10): the worker's private
# memory and the drain's speed at several sizes, in one run.
#
# For each size N of $SIZES (default 1M, then 10M), replication stopped:
#   - stage N keyed changes through xtk_ingest_ext (_key="@id"), collections
#     of $COLL records, one transaction each ($KIND=new: upserts of new ids
#     1..N, cloud empty; $KIND=mixed: the cloud holds ids 1..N first and
#     the stream cycles, in blocks of 100 rows, through upserts of new ids
#     N+j, partial updates (testcol1) of ids j and deletes of ids j), then
#     VACUUM ANALYZE the staging table;
#   - baseline: psql local COPY (SELECT _uuid, id, testcol1, testcol2, score
#     FROM the staging table) TO STDOUT | psql cloud COPY bench_target FROM
#     STDIN, the N staged rows into an empty table made with CREATE TABLE
#     ... (LIKE dem.sampletable INCLUDING ALL) (the same columns and the
#     same 3 unique indexes, checked);
#   - drain: SELECT campaign.replicate_now('dem:sampleTable') (returns when
#     every batch is applied and committed), with the worker's
#     /proc/<pid>/status sampled every 50 ms (campaign.max_workers = 1:
#     one worker): peak RssAnon (its private memory; goal < 64 MB) and
#     VmHWM (reset before the drain; it includes the shared_buffers pages
#     the worker touched, which are not its own);
#   - check: the cloud table's count of rows and the sum of hashtext() of
#     each row's (id, testcol1, testcol2, score) equal those computed
#     locally from the stream (new: the stream's rows; mixed: the initial
#     rows with the stream applied by the set-based SQL of bench/keyed.sh's
#     naive merge, exact here since each id appears once in the stream).
# Ratio: baseline time / drain time (1.00 = the COPY pipe's speed).  Both
# servers take a CHECKPOINT before each timed run.  One round per size
# (10M rows take several minutes each way): run it on a quiet machine, or
# several times.
#
# Usage:  bash bench/backlog.sh
# Knobs:  SIZES="1000000 10000000" KIND=new|mixed COLL=10000
#         DRAIN_TIMEOUT=3600 (s) BATCH_SIZE= BATCH_MEMORY= (campaign.batch_size
#         and batch_memory of the local server; empty: the defaults)
#         KEEP=1 PG_CONFIG=... (as bench/replication.sh)
set -euo pipefail

SIZES=${SIZES:-1000000 10000000}
KIND=${KIND:-new}
COLL=${COLL:-10000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-3600}
BATCH_SIZE=${BATCH_SIZE:-}
BATCH_MEMORY=${BATCH_MEMORY:-}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case $KIND in new | mixed) ;; *) echo "bench/backlog.sh: KIND must be new or mixed" >&2; exit 1 ;; esac
for n in $SIZES; do
    if [ $((n % COLL)) -ne 0 ] || [ "$n" -lt "$COLL" ]; then
        echo "bench/backlog.sh: every size must be a multiple of COLL=$COLL" >&2
        exit 1
    fi
done
bench_setup bench/backlog.sh
start_pair 55600 55699 "$(drain_conf)"
setup_campaign "$CPORT"
# The local model of "mixed": what the cloud must hold.
lsql "CREATE TABLE bench_model (id text PRIMARY KEY, testcol1 text, testcol2 text, score integer)"
csql "CREATE TABLE bench_target (LIKE dem.sampletable INCLUDING ALL)"
same_shape dem.sampletable bench_target

WPID=$(worker_pid)
[ -n "$WPID" ] || fail "no campaign replication worker running on the local server"

# The changes j in [$1, $2] of a stream of size N: op, id, testcol1,
# testcol2, score (for "mixed", over the ids 1..N in the cloud).
change_sql() {  # change_sql N -> a SELECT of (j, op, id, t1, t2, score)
    if [ "$KIND" = new ]; then
        echo "SELECT j, 'upsert' AS op, j::text AS id, 'value ' || j AS t1, 'other ' || j AS t2, j AS score FROM generate_series(\$1, \$2) j"
    else
        echo "SELECT j, op, CASE op WHEN 'upsert' THEN ($1 + j)::text ELSE j::text END AS id,
                     CASE op WHEN 'upsert' THEN 'mix ' || j WHEN 'update' THEN 'part ' || j END AS t1,
                     CASE op WHEN 'upsert' THEN 'mix2 ' || j END AS t2,
                     CASE op WHEN 'upsert' THEN j END AS score
                FROM generate_series(\$1, \$2) j,
                     LATERAL (SELECT (ARRAY['upsert', 'update', 'delete'])[(j - 1) / 100 % 3 + 1] AS op) o"
    fi
}

# Stage the stream: one xtk_ingest_ext per collection, through a function so
# that psql sends one short statement per collection.
stage() {  # stage N
    "${LPSQL[@]}" >/dev/null <<EOF
CREATE OR REPLACE FUNCTION bench_stage(j0 bigint, j1 bigint) RETURNS void LANGUAGE sql AS \$f\$
SELECT campaign.xtk_ingest_ext((SELECT '<sampleTableStg-collection xtkschema="dem:sampleTableStg" _key="@id">'
    || string_agg(format('<sampleTableStg id="%s"%s%s%s%s/>', id,
                         CASE WHEN op IN ('update', 'delete') THEN format(' _operation="%s"', op) ELSE '' END,
                         CASE WHEN t1 IS NOT NULL THEN format(' testcol1="%s"', t1) ELSE '' END,
                         CASE WHEN t2 IS NOT NULL THEN format(' testcol2="%s"', t2) ELSE '' END,
                         CASE WHEN score IS NOT NULL THEN format(' score="%s"', score) ELSE '' END), '' ORDER BY j)
    || '</sampleTableStg-collection>' FROM ($(change_sql "$1")) c))
\$f\$;
TRUNCATE dem.sampletablestg;
EOF
    seq 1 "$COLL" "$1" | awk -v c="$COLL" '{ printf "SELECT bench_stage(%d, %d);\n", $1, $1 + c - 1 }' |
        "${LPSQL[@]}" >/dev/null
    lsql "VACUUM ANALYZE dem.sampletablestg" >/dev/null
}

# What the cloud must hold after the stream, as "count hash-sum".
ROWSUM="count(*) || ' ' || coalesce(sum(hashtext(concat_ws('|', id, coalesce(testcol1, '~'), coalesce(testcol2, '~'), coalesce(score::text, '~'))))::text, '0')"
model() {  # model N -> "count sum"
    if [ "$KIND" = new ]; then
        lsql "SELECT $ROWSUM FROM (SELECT id, t1 AS testcol1, t2 AS testcol2, score FROM ($(change_sql "$1" | sed 's/\$1/1/; s/\$2/'"$1"'/')) c) s"
        return
    fi
    "${LPSQL[@]}" >/dev/null <<EOF
TRUNCATE bench_model;
INSERT INTO bench_model SELECT j::text, 'value ' || j, 'other ' || j, j FROM generate_series(1, $1) j;
CREATE TEMP TABLE c AS SELECT * FROM ($(change_sql "$1" | sed 's/\$1/1/; s/\$2/'"$1"'/')) s;
DELETE FROM bench_model m USING c WHERE c.op = 'delete' AND m.id = c.id;
UPDATE bench_model m SET testcol1 = coalesce(c.t1, m.testcol1), testcol2 = coalesce(c.t2, m.testcol2),
       score = coalesce(c.score, m.score) FROM c WHERE c.op = 'update' AND m.id = c.id;
INSERT INTO bench_model SELECT id, t1, t2, score FROM c WHERE op = 'upsert'
    ON CONFLICT (id) DO UPDATE SET testcol1 = coalesce(EXCLUDED.testcol1, bench_model.testcol1),
       testcol2 = coalesce(EXCLUDED.testcol2, bench_model.testcol2), score = coalesce(EXCLUDED.score, bench_model.score);
EOF
    lsql "SELECT $ROWSUM FROM bench_model"
}

# The cloud's initial state (for mixed: ids 1..N).
initial_state() {  # initial_state N
    csql "TRUNCATE dem.sampletable, bench_target" >/dev/null
    if [ "$KIND" = mixed ]; then
        csql "INSERT INTO dem.sampletable (_uuid, id, testcol1, testcol2, score)
              SELECT gen_random_uuid(), j::text, 'value ' || j, 'other ' || j, j FROM generate_series(1, $1) j" >/dev/null
    fi
    csql "VACUUM ANALYZE dem.sampletable" >/dev/null
}

bench_banner "campaign keyed backlog bench" "$(lsql "SHOW server_version")"
echo "   scratch clusters in $WORK: local port $LPORT (campaign worker), cloud port $CPORT; unix sockets"
echo "   both: shared_buffers=256MB, max_wal_size=4GB, fsync=on, synchronous_commit=on"
echo "   campaign.batch_size=$(lsql "SHOW campaign.batch_size"), campaign.batch_memory=$(lsql "SHOW campaign.batch_memory")"
echo "   stream: $KIND; sizes: $SIZES; collections of $COLL; cloud tables dem.sampletable and bench_target: ($SHAPE_COLS)"
printf '%s\n' "$SHAPE_INDEXES" | sed 's/^/     index: /'
echo
printf '   %10s %10s %10s %10s %9s %7s %10s %10s %10s  %s\n' rows "stage s" "COPY ms" "drain ms" "rows/s" ratio \
    "RssAnon MB" "idle MB" "VmHWM MB" "load average"
RESULTS=()
for n in $SIZES; do
    t0=$(now); stage "$n"; t1=$(now)
    stage_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
    want=$(model "$n")

    initial_state "$n"
    checkpoint_both
    t0=$(now)
    "${LPSQL[@]}" -c "COPY (SELECT _uuid, id, testcol1, testcol2, score FROM dem.sampletablestg) TO STDOUT" |
        "${CPSQL[@]}" -c "COPY bench_target (_uuid, id, testcol1, testcol2, score) FROM STDIN"
    t1=$(now)
    copy_ms=$(elapsed_ms "$t0" "$t1")
    [ "$(csql "SELECT count(*) FROM bench_target")" = "$n" ] || fail "the COPY pipe did not load $n rows"
    csql "TRUNCATE bench_target" >/dev/null

    checkpoint_both
    idle=$(sed -nE 's/^RssAnon:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$WPID/status")
    start_sampler "$WPID" "$WORK/mem.out"
    out=$(timed_drain "$DRAIN_TIMEOUT") || fail "the drain of $n rows failed (or took longer than DRAIN_TIMEOUT=$DRAIN_TIMEOUT s)"
    hwm=$(hwm_kb "$WPID")
    stop_sampler
    read -r _ anon _ <"$WORK/mem.out"
    drain_ms=$(timing_ms <<<"$out")
    count=$(timed_value <<<"$out")
    [ "$count" = "$n" ] || fail "replicate_now returned $count, not $n"
    got=$(csql "SELECT $ROWSUM FROM dem.sampletable")
    [ "$got" = "$want" ] || fail "WRONG CONTENT after the drain of $n: the cloud has (count hash-sum) $got, the model $want"
    r=$(ratio "$copy_ms" "$drain_ms")
    printf '   %10s %10s %10s %10s %9s %7s %10s %10s %10s  %s\n' "$n" "$stage_s" "$copy_ms" "$drain_ms" \
        "$(per_s "$n" "$drain_ms")" "$r" "$(mb "$anon")" "$(mb "$idle")" "$(mb "$hwm")" "$(load_average)"
    RESULTS+=("$n:$r:$anon")
done

echo
echo "== summary (stream $KIND; ratio = COPY pipe time / drain time of the same rows; the cloud matched the model after every drain)"
for res in "${RESULTS[@]}"; do
    IFS=: read -r n r anon <<<"$res"
    printf '   %10s rows: ratio %s (%s), worker RssAnon peak %s MB (%s)\n' "$n" "$r" "$(verdict "$r" 0.5 0.8) (0.5/0.8)" \
        "$(mb "$anon")" "$(awk -v a="$anon" 'BEGIN { print (a < 64 * 1024 ? "under 64 MB" : "ABOVE 64 MB") }')"
done

#!/usr/bin/env bash
# bench/status.sh — what reading campaign.staging_status costs when the
# staging table keeps a large replicated history, in one run:
#
#   a staging table holding $NROWS replicated rows (below the watermark), 5
#   pending rows above it and one pending number below it (an ingest
#   transaction that was open at the last batch), one row the cloud rejected
#   and one held behind it; then, in three states of the table:
#     1. never analyzed (autovacuum off: a table filled since its last
#        ANALYZE, whose planner statistics say nothing of the watermark);
#     2. analyzed;
#     3. analyzed, the watermark reset to 0: all $NROWS rows pending;
#   the median of $RUNS reads of SELECT * FROM campaign.staging_status (psql
#   \timing), and the scans staging_counts() ran on the staging table
#   (auto_explain of its nested statements: plan nodes and rows read).
#   Goal: states 1 and 2 read only the pending rows and the rows in error,
#   through the indexes, never the replicated ones.
#
# Usage:  bash bench/status.sh     (as root or as postgres, or any non-root
#                                   user that can initdb)
# Knobs (environment): NROWS=1000000 RUNS=11 KEEP=1 PG_CONFIG=...
#
# The extension must be installed first (make && make install).  One scratch
# cluster (bench/lib.sh's start_cluster, autovacuum off), no cloud: the
# schema is registered, not deployed, and the watermark is set by hand, so
# the worker leaves the table alone.
set -euo pipefail

NROWS=${NROWS:-1000000}
RUNS=${RUNS:-11}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup bench/status.sh
LPORT=$(free_ports 1 55800 55899)
bench_at_exit "$WORK/local"
bench_psql "$LPORT"
start_cluster local "$LPORT" "shared_preload_libraries = 'campaign'
autovacuum = off"

lsql "SET client_min_messages = warning; CREATE EXTENSION campaign CASCADE"
lsql "SELECT campaign.register_schema('$SAMPLE_XML')" >/dev/null
lsql "INSERT INTO dem.sampletablestg (_uuid, _operation, _carried, id, testcol1, testcol2, score)
      SELECT gen_random_uuid(), 'insert', '{id,testcol1,testcol2,score}', i, 'value ' || i, 'other ' || i, i
        FROM generate_series(1, $NROWS + 7) i"
lsql "UPDATE dem.sampletablestg SET _stg_error = CASE _stg_seq WHEN $((NROWS + 6)) THEN 'rejected'
                                 ELSE 'waiting behind change $((NROWS + 6)) of the same key, rejected' END
       WHERE _stg_seq IN ($((NROWS + 6)), $((NROWS + 7)))"
watermark() { lsql "UPDATE campaign.schemas SET replicated_upto = $1, replicated_pending = '$2' WHERE name = 'sampleTable'"; }
watermark "$NROWS" "{$((NROWS / 2))}"

bench_banner "campaign staging_status bench" "$(lsql "SHOW server_version")"
echo "   scratch cluster $WORK/local, port $LPORT; autovacuum off"
echo "   dem.sampletablestg: $NROWS replicated rows, 5 pending above the watermark, 1 pending number below it, 1 rejected, 1 held"

Q="SELECT * FROM campaign.staging_status"
state() {  # state LABEL
    local ms counts
    counts=$(lsql "SELECT pending || ' pending, ' || errors || ' errors, ' || held || ' held'
                     FROM campaign.staging_status WHERE schema_name = 'dem:sampleTable'")
    ms=$(timed_sql "$(for _ in $(seq 1 "$RUNS"); do echo "$Q;"; done)" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | median 2)
    printf '   %-52s %10s ms  (%s)\n' "$1" "$ms" "$counts"
    # The scans of the staging table, from auto_explain's plans of the
    # function's statements.
    "${LPSQL[@]}" -At 2>&1 <<SQL | sed -nE 's/^ *(->  )?((Parallel )?(Seq|Index|Index Only|Bitmap Heap|Bitmap Index) Scan( Backward)? (using [a-z_]+ )?on sampletablestg[a-z_]*)[^(]*\(cost=[^)]*\) \(actual rows=([0-9]+) loops=([0-9]+)\).*/        \2: \7 row(s) x \8/p'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT count(*) FROM campaign.staging_counts();
SQL
}

echo
echo "   median of $RUNS reads of campaign.staging_status (load average $(load_average)):"
state "1. never analyzed"
lsql "VACUUM ANALYZE dem.sampletablestg"
state "2. analyzed"
watermark 0 '{}'
state "3. analyzed, all $NROWS rows pending"
echo "   load average at end: $(load_average)"

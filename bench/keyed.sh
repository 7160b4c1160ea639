#!/usr/bin/env bash
# bench/keyed.sh — keyed and mixed change streams through the replication
# engine, side by side with a COPY pipe, a naive merge and native logical
# replication (issue 10), in one run on the same two scratch servers.
# Not a pass/fail test: it prints figures; a cloud table whose content is
# not the expected one after a run is reported (WRONG CONTENT, with the
# counts and md5s) and makes the script exit with status 2 at the end.
#
# The cloud table is deployed the way a user would, with
# campaign.deploy('dem:sampleTable', fillfactor => $FILLFACTOR) (default 50:
# "existing" updates every row of the table, so each page needs room for a
# second version of each of its rows for the updates to stay HOT); the
# other cloud tables of the bench (bench_target of the COPY pipe,
# bench_merge, bench_lr) and the local bench_lr get the same fillfactor
# (checked), so that the baseline is the same table.  The COPY pipe into
# the same table with fillfactor 100 is timed too, as a reference (copy100).
#
# The servers: "local" (shared_preload_libraries = 'campaign', whose worker
# replicates database postgres; wal_level = logical for the native
# logical replication peer) and "cloud" (plain PostgreSQL with
# pg_stat_statements preloaded for the profile).  Otherwise the settings of
# bench/lib.sh's start_cluster on both: fsync and synchronous_commit on,
# shared_buffers = 256MB, max_wal_size = 4GB.
#
# The streams (local table bench_changes: one row per change; a NULL value
# is an attribute the change does not carry), $NROWS changes each unless
# said otherwise, ingested in collections of $COLL records (the XML
# documents are built once, untimed, into bench_docs; the timed loads send
# them as they are):
#   keyless   inserts through xtk_ingest (no _key), ids 1..N;
#   new       xtk_ingest_ext upserts (_key="@id") of ids 1..N, cloud empty;
#   existing  upserts of ids 1..N, all attributes changed, cloud holding
#             the N rows of "new" (so every change is an update);
#   mixed100  blocks of 100 rows cycling: upserts of new ids N+j, partial
#             updates (_operation="update", testcol1 only) of ids j,
#             deletes of ids j; cloud holding the rows of "existing";
#   perrow    the operation changing on every row over $KEYS keys k1..kK:
#             change j touches key (j-1) % K + 1 with operation
#             (j + (j-1)/K) % 4: full upsert, update of score only,
#             delete, upsert of testcol1 only (so each key sees every
#             operation in turn, including updates of absent keys and
#             re-inserts after deletes);
#   random    a seeded random stream of $RANDOM_CHANGES changes over $KEYS
#             keys r1..rK: 35% full upserts, 15% partial upserts, 30%
#             partial updates (each attribute carried with probability
#             1/2), 20% deletes (re-inserts follow naturally).
# The expected cloud content after each stream is computed locally by
# bench_apply(), which applies the changes one by one in order with plain
# SQL (INSERT ... ON CONFLICT, UPDATE, DELETE on a local table), not with
# the engine's folding: count and md5 of (id, testcol1, testcol2, score)
# of the cloud table must equal those of the model after every timed run.
#
# What is timed (each run starts from the stream's initial state, loaded
# into the cloud untimed; CHECKPOINT on both servers before each):
#   baseline  psql local COPY (SELECT _uuid, id, testcol1, testcol2, score
#             FROM bench_rows) TO STDOUT | psql cloud COPY bench_target
#             FROM STDIN, $NROWS rows into an empty table made with
#             CREATE TABLE bench_target (LIKE dem.sampletable INCLUDING ALL):
#             the same columns, the same 3 unique indexes and the same
#             fillfactor (checked)  = 1.00;
#   copy100   the same pipe into bench_target100, the same table with
#             fillfactor 100 (a reference: the ratios are against copy);
#   drain     replication stopped, the stream staged and the staging table
#             vacuumed, then SELECT campaign.replicate_now('dem:sampleTable')
#             (returns when every batch is applied and committed);
#   merge     the naive merge, on bench_merge (LIKE dem.sampletable
#             INCLUDING ALL) holding the initial state: in one psql session
#             and one transaction (psql -1), CREATE TEMP TABLE landing,
#             COPY landing FROM STDIN fed by psql local COPY (SELECT
#             gen_random_uuid(), op, id, t1, t2, score FROM bench_changes)
#             TO STDOUT, then
#               DELETE FROM bench_merge t USING landing l
#                WHERE l.op = 'delete' AND t.id = l.id;
#               UPDATE bench_merge t SET each attribute = coalesce(l.attr, t.attr)
#                 FROM landing l WHERE l.op = 'update' AND t.id = l.id;
#               INSERT INTO bench_merge (_uuid, id, ...) SELECT ... FROM landing
#                WHERE l.op = 'upsert' ON CONFLICT (id) DO UPDATE
#                  SET each attribute = coalesce(EXCLUDED.attr, bench_merge.attr);
#             It is only right when a key appears once in the stream (new,
#             existing, mixed100); without folding per key it cannot apply
#             perrow or random (ON CONFLICT cannot touch a row twice).
#   e2e       end to end, from the start of the local load until the last
#             change is visible in the cloud, replication running during
#             the load:
#             campaign: continuous mode, the stream ingested through
#               xtk_ingest_ext; done when the cloud's watermark
#               (campaign_replication.watermark) covers the last staged
#               change (it commits with the changes), polled every 20 ms;
#             native logical replication: publication of a plain local table
#               bench_lr (the same columns and indexes) and of a one-column
#               table bench_lr_done, subscription on the cloud (defaults:
#               its apply worker commits with synchronous_commit = off);
#               the load applies the same changes with the three statements
#               of the naive merge per collection (one transaction each),
#               then inserts a marker row into bench_lr_done; done when the
#               marker is on the cloud (changes apply in commit order),
#               polled every 20 ms.  For new, existing and mixed100.
#               Its subscription is enabled only during its own runs (its
#               walsender would otherwise decode campaign's staging writes
#               during campaign's runs).
# Ratios: baseline time / time ($NROWS rows vs $NROWS changes), so 1.00 is
# the COPY pipe's speed; rows/s are changes per second.  Best of $REPEAT
# rounds, the order of the runs reversed every other round.
#
# Profile: during the first round's drain of "new", "existing" and "mixed100",
# pg_stat_statements on the cloud (reset just before): the top statements by
# execution time, their share of the drain's wall time, and the HOT share of
# the cloud table's updates.
#
# Usage:  bash bench/keyed.sh            (as root, as postgres, or any
#                                          non-root user that can initdb)
# Knobs: NROWS=300000 REPEAT=2 KEYS=2000 RANDOM_CHANGES=12000 COLL=10000
#        FILLFACTOR=50 (of the cloud tables, 10 to 100)
#        SMALL=1 (NROWS=30000, a quick check) DRAIN_TIMEOUT=600 (s)
#        ONLY="drain:new lr:new ..." (only these runs; the COPY pipe always)
#        KEEP=1 (keep the scratch dir) PG_CONFIG=... (may be a relocated
#        copy of PostgreSQL, as in bench/replication.sh)
set -euo pipefail

if [ "${SMALL:-0}" = 1 ]; then NROWS=${NROWS:-30000}; fi
NROWS=${NROWS:-300000}
REPEAT=${REPEAT:-2}
KEYS=${KEYS:-2000}
RANDOM_CHANGES=${RANDOM_CHANGES:-12000}
COLL=${COLL:-10000}
FILLFACTOR=${FILLFACTOR:-50}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup bench/keyed.sh

# ---------------------------------------------------------------- servers
start_pair 55700 55799 "shared_preload_libraries = 'campaign'
wal_level = logical" "shared_preload_libraries = 'pg_stat_statements'"

setup_campaign "$CPORT" ", fillfactor => $FILLFACTOR"
"${CPSQL[@]}" >/dev/null <<EOF
CREATE EXTENSION pg_stat_statements;
CREATE TABLE bench_target (LIKE dem.sampletable INCLUDING ALL) WITH (fillfactor = $FILLFACTOR);
CREATE TABLE bench_target100 (LIKE dem.sampletable INCLUDING ALL) WITH (fillfactor = 100);
CREATE TABLE bench_merge (LIKE dem.sampletable INCLUDING ALL) WITH (fillfactor = $FILLFACTOR);
CREATE TABLE bench_lr (LIKE dem.sampletable INCLUDING ALL) WITH (fillfactor = $FILLFACTOR);
CREATE TABLE bench_lr_done (n integer PRIMARY KEY);
EOF
for t in bench_target bench_target100 bench_merge bench_lr; do same_shape dem.sampletable "$t"; done
for t in dem.sampletable bench_target bench_merge bench_lr; do
    ff=$(csql "SELECT coalesce((SELECT option_value FROM pg_options_to_table(reloptions) WHERE option_name = 'fillfactor'), '100') FROM pg_class WHERE oid = '$t'::regclass")
    [ "$ff" = "$FILLFACTOR" ] || fail "cloud table $t has fillfactor $ff, not $FILLFACTOR"
done
# The same table locally, published.
"${LPSQL[@]}" >/dev/null <<EOF
CREATE TABLE bench_lr (_autopk bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                       _uuid uuid UNIQUE, id varchar(20) CONSTRAINT bench_lr_id UNIQUE,
                       testcol1 varchar(255), testcol2 varchar(255), score integer)
                       WITH (fillfactor = $FILLFACTOR);
CREATE TABLE bench_lr_done (n integer PRIMARY KEY);
CREATE PUBLICATION bench_pub FOR TABLE bench_lr, bench_lr_done;
EOF
csql "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=$WORK port=$LPORT dbname=postgres' PUBLICATION bench_pub WITH (copy_data = false)" >/dev/null

# ---------------------------------------------------------------- streams and the model
"${LPSQL[@]}" >/dev/null <<EOF
CREATE TABLE bench_changes (k text, j integer, op text, id text, t1 text, t2 text, score integer,
                            PRIMARY KEY (k, j));
INSERT INTO bench_changes
SELECT 'keyless', i, 'insert', i::text, 'value ' || i, 'other ' || i, i FROM generate_series(1, $NROWS) i
UNION ALL
SELECT 'new', i, 'upsert', i::text, 'value ' || i, 'other ' || i, i FROM generate_series(1, $NROWS) i
UNION ALL
SELECT 'existing', i, 'upsert', i::text, 'upd ' || i, 'upd2 ' || i, i + 1 FROM generate_series(1, $NROWS) i
UNION ALL
SELECT 'mixed100', i, op, CASE op WHEN 'upsert' THEN ($NROWS + i)::text ELSE i::text END,
       CASE op WHEN 'upsert' THEN 'mix ' || i WHEN 'update' THEN 'part ' || i END,
       CASE op WHEN 'upsert' THEN 'mix2 ' || i END,
       CASE op WHEN 'upsert' THEN i END
  FROM generate_series(1, $NROWS) i,
       LATERAL (SELECT (ARRAY['upsert', 'update', 'delete'])[(i - 1) / 100 % 3 + 1] AS op) o
UNION ALL
SELECT 'perrow', i, (ARRAY['upsert', 'update', 'delete', 'upsert'])[s + 1], 'k' || ((i - 1) % $KEYS + 1),
       CASE s WHEN 0 THEN 'r ' || i WHEN 3 THEN 'p ' || i END,
       CASE s WHEN 0 THEN 'r2 ' || i END,
       CASE WHEN s IN (0, 1) THEN i END
  FROM generate_series(1, $NROWS) i, LATERAL (SELECT (i + (i - 1) / $KEYS) % 4 AS s) o;
SELECT setseed(0.1010);
INSERT INTO bench_changes
SELECT 'random', i, op, 'r' || key,
       CASE WHEN full_ OR c1 THEN 'x ' || i END, CASE WHEN full_ OR c2 THEN 'y ' || i END,
       CASE WHEN full_ OR c3 THEN i END
  FROM (SELECT i, 1 + floor(random() * $KEYS)::int AS key, random() AS p,
               random() < 0.5 AS c1, random() < 0.5 AS c2, random() < 0.5 AS c3
          FROM generate_series(1, $RANDOM_CHANGES) i) r,
       LATERAL (SELECT CASE WHEN p < 0.5 THEN 'upsert' WHEN p < 0.8 THEN 'update' ELSE 'delete' END AS op,
                       p < 0.35 AS full_) o
 ORDER BY i;
UPDATE bench_changes SET t1 = NULL, t2 = NULL, score = NULL WHERE k = 'random' AND op = 'delete';
VACUUM ANALYZE bench_changes;

-- The model: the changes one by one, in order, with plain SQL.
CREATE TABLE bench_state (id text PRIMARY KEY, t1 text, t2 text, score integer);
CREATE TABLE bench_exp (k text, id text, t1 text, t2 text, score integer);
CREATE FUNCTION bench_apply(stream text) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE c record;
BEGIN
    FOR c IN SELECT * FROM bench_changes WHERE k = stream ORDER BY j LOOP
        IF c.op = 'insert' THEN
            INSERT INTO bench_state VALUES (c.id, c.t1, c.t2, c.score);
        ELSIF c.op = 'upsert' THEN
            INSERT INTO bench_state VALUES (c.id, c.t1, c.t2, c.score)
                ON CONFLICT (id) DO UPDATE SET t1 = coalesce(c.t1, bench_state.t1),
                    t2 = coalesce(c.t2, bench_state.t2), score = coalesce(c.score, bench_state.score);
        ELSIF c.op = 'update' THEN
            UPDATE bench_state SET t1 = coalesce(c.t1, t1), t2 = coalesce(c.t2, t2),
                   score = coalesce(c.score, score) WHERE id = c.id;
        ELSE
            DELETE FROM bench_state WHERE id = c.id;
        END IF;
    END LOOP;
    INSERT INTO bench_exp SELECT stream, * FROM bench_state;
END \$\$;
SELECT bench_apply('keyless');
TRUNCATE bench_state;
SELECT bench_apply('new');
SELECT bench_apply('existing');
SELECT bench_apply('mixed100');
SELECT bench_apply('perrow');
SELECT bench_apply('random');
CREATE INDEX ON bench_exp (k);
CREATE TABLE bench_rows AS SELECT gen_random_uuid() AS _uuid, id, t1 AS testcol1, t2 AS testcol2, score
                             FROM bench_exp WHERE k = 'keyless';
VACUUM ANALYZE bench_exp, bench_rows;
EOF

# The initial state of each stream: the expected state after another one.
declare -A INITIAL=([keyless]='' [new]='' [existing]=new [mixed100]=existing [perrow]=mixed100 [random]=perrow)
declare -A NCHANGES=([keyless]=$NROWS [new]=$NROWS [existing]=$NROWS [mixed100]=$NROWS [perrow]=$NROWS [random]=$RANDOM_CHANGES)

# "count md5" of (id, testcol1, testcol2, score) of a relation.
CONTENT="count(*) || ' ' || md5(coalesce(string_agg(concat_ws('|', id, coalesce(testcol1, '~'), coalesce(testcol2, '~'), coalesce(score::text, '~')), ',' ORDER BY id), ''))"
expected_content() { lsql "SELECT $CONTENT FROM (SELECT id, t1 AS testcol1, t2 AS testcol2, score FROM bench_exp WHERE k = '$1') e"; }
WRONG=$WORK/wrong-content
check_content() {  # check_content CLOUD_TABLE STREAM WHAT
    local got want
    got=$(csql "SELECT $CONTENT FROM $1")
    want=$(expected_content "$2")
    if [ "$got" != "$want" ]; then
        echo "WRONG CONTENT after $3: $1 has (count md5) $got, the model of '$2' expects $want" | tee -a "$WRONG" >&2
    fi
}

# Load a state into a cloud table (TRUNCATE, then COPY from the model).
load_state() {  # load_state CLOUD_TABLE STATE
    csql "TRUNCATE $1" >/dev/null
    if [ -n "$2" ]; then
        "${LPSQL[@]}" -c "COPY (SELECT gen_random_uuid(), id, t1, t2, score FROM bench_exp WHERE k = '$2') TO STDOUT" |
            "${CPSQL[@]}" -c "COPY $1 (_uuid, id, testcol1, testcol2, score) FROM STDIN"
    fi
    csql "VACUUM ANALYZE $1" >/dev/null
}

# The documents of a stream, one per collection of $COLL records, built
# once (untimed) into bench_docs: the timed load sends ready documents, as an
# API client does, instead of formatting 300k XML elements in the timed
# statements (which the logical replication peer's load does not do).
build_docs() {  # build_docs STREAM
    local s=$1 key=''
    [ "$s" = keyless ] || key=' _key="@id"'
    lsql "INSERT INTO bench_docs
          SELECT '$s', (j - 1) / $COLL, '<sampleTableStg-collection xtkschema=\"dem:sampleTableStg\"$key>'
                 || string_agg(format('<sampleTableStg id=\"%s\"%s%s%s%s/>', id,
                         CASE WHEN op IN ('update', 'delete') THEN format(' _operation=\"%s\"', op) ELSE '' END,
                         CASE WHEN t1 IS NOT NULL THEN format(' testcol1=\"%s\"', t1) ELSE '' END,
                         CASE WHEN t2 IS NOT NULL THEN format(' testcol2=\"%s\"', t2) ELSE '' END,
                         CASE WHEN score IS NOT NULL THEN format(' score=\"%s\"', score) ELSE '' END), '' ORDER BY j)
                 || '</sampleTableStg-collection>'
            FROM bench_changes WHERE k = '$s' GROUP BY (j - 1) / $COLL" >/dev/null
}

# The staging script of a stream: one xtk_ingest(_ext) per document.
stage_script() {  # stage_script STREAM FILE
    local s=$1 n fn=xtk_ingest_ext
    [ "$s" != keyless ] || fn=xtk_ingest
    : >"$2"
    for n in $(lsql "SELECT n FROM bench_docs WHERE k = '$s' ORDER BY n"); do
        echo "SELECT campaign.$fn(doc) IS NULL FROM bench_docs WHERE k = '$s' AND n = $n;" >>"$2"
    done
    own "$2"
}

# The naive merge's statements on a table, reading "landing" (op, id, t1, t2, score).
merge_sql() {  # merge_sql TABLE LANDING
    cat <<EOF
DELETE FROM $1 t USING $2 l WHERE l.op = 'delete' AND t.id = l.id;
UPDATE $1 t SET testcol1 = coalesce(l.t1, t.testcol1), testcol2 = coalesce(l.t2, t.testcol2),
       score = coalesce(l.score, t.score)
  FROM $2 l WHERE l.op = 'update' AND t.id = l.id;
INSERT INTO $1 AS t (_uuid, id, testcol1, testcol2, score)
SELECT l._uuid, l.id, l.t1, l.t2, l.score FROM $2 l WHERE l.op = 'upsert'
    ON CONFLICT (id) DO UPDATE SET testcol1 = coalesce(EXCLUDED.testcol1, t.testcol1),
       testcol2 = coalesce(EXCLUDED.testcol2, t.testcol2), score = coalesce(EXCLUDED.score, t.score);
EOF
}

# The local load of the logical replication peer: the merge per collection.
lr_script() {  # lr_script STREAM FILE
    local from
    : >"$2"
    for from in $(seq 1 "$COLL" "${NCHANGES[$1]}"); do
        {
            echo "BEGIN;"
            merge_sql bench_lr "(SELECT gen_random_uuid() AS _uuid, * FROM bench_changes WHERE k = '$1' AND j BETWEEN $from AND $((from + COLL - 1)))"
            echo "COMMIT;"
        } >>"$2"
    done
    own "$2"
}

lsql "CREATE TABLE bench_docs (k text, n integer, doc text, PRIMARY KEY (k, n)); ALTER TABLE bench_docs ALTER doc SET STORAGE EXTERNAL" >/dev/null
for s in keyless new existing mixed100 perrow random; do
    build_docs "$s"
    stage_script "$s" "$WORK/stage-$s.sql"
done
lsql "VACUUM ANALYZE bench_docs" >/dev/null
for s in new existing mixed100; do lr_script "$s" "$WORK/lr-$s.sql"; done

# ---------------------------------------------------------------- runs
# The logical replication peer runs only during its own runs: its walsender
# decodes every WAL record of the local server (the staging writes of
# campaign's runs included, filtering them out only after decoding), which
# took a third of the CPU of a campaign end-to-end run on 2 cores.  Its
# subscription is disabled for the other runs and enabled again at the start
# of each lr run, whose untimed initial state waits until it has caught up.
LR_ON=1
lr_pause() {
    [ "$LR_ON" = 1 ] || return 0
    csql "ALTER SUBSCRIPTION bench_sub DISABLE" >/dev/null
    local i
    for i in $(seq 1 500); do
        [ "$(lsql "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'bench_sub'")" = 0 ] && break
        sleep 0.02
    done
    LR_ON=0
}
lr_resume() {
    [ "$LR_ON" = 0 ] || return 0
    csql "ALTER SUBSCRIPTION bench_sub ENABLE" >/dev/null
    LR_ON=1
}

run_copy() {  # run_copy TABLE -> ms
    local t0 t1
    csql "TRUNCATE $1" >/dev/null
    checkpoint_both
    t0=$(now)
    "${LPSQL[@]}" -c "COPY (SELECT _uuid, id, testcol1, testcol2, score FROM bench_rows) TO STDOUT" |
        "${CPSQL[@]}" -c "COPY $1 (_uuid, id, testcol1, testcol2, score) FROM STDIN"
    t1=$(now)
    [ "$(csql "SELECT count(*) FROM $1")" = "$NROWS" ] || fail "the COPY pipe did not load $NROWS rows"
    elapsed_ms "$t0" "$t1"
}

stage() {  # stage STREAM: staging emptied, the stream staged, vacuumed
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    "${LPSQL[@]}" -f "$WORK/stage-$1.sql" >/dev/null
    lsql "VACUUM ANALYZE dem.sampletablestg" >/dev/null
}

PROFILE=()
run_drain() {  # run_drain STREAM [profile] -> sets RESULT_MS, DETAIL
    local s=$1 out count hist_from
    lsql "SELECT campaign.stop_replication('dem:sampleTable')" >/dev/null
    load_state dem.sampletable "${INITIAL[$s]}"
    stage "$s"
    hist_from=$(lsql "SELECT coalesce(max(id), 0) FROM campaign.replication_history")
    checkpoint_both
    [ "${2:-}" != profile ] || csql "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset()" >/dev/null
    out=$(timed_drain "$DRAIN_TIMEOUT") || fail "the drain of '$s' failed (or took longer than DRAIN_TIMEOUT=$DRAIN_TIMEOUT s)"
    count=$(timed_value <<<"$out")
    RESULT_MS=$(timing_ms <<<"$out")
    [ "$count" = "${NCHANGES[$s]}" ] || fail "replicate_now of '$s' returned $count, not ${NCHANGES[$s]}"
    [ "${2:-}" != profile ] || profile "$s" "$RESULT_MS"
    check_content dem.sampletable "$s" "the drain of '$s'"
    DETAIL=$(lsql "SELECT count(*) || ' batch(es), ' || sum(rejected) || ' rejected, sum '
                          || round(1000 * extract(epoch FROM sum(finished_at - started_at))) || ' ms'
                     FROM campaign.replication_history WHERE id > $hist_from AND outcome = 'success'")
}

profile() {  # profile STREAM DRAIN_MS: the cloud's statements during the drain
    local total
    sleep 1.5   # the cloud backends flush their table statistics when idle, at most once a second
    total=$(csql "SELECT round(sum(total_exec_time)) FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'")
    PROFILE+=("  drain of '$1' ($2 ms wall; cloud statements executing: $total ms = $(awk -v a="$total" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }')% of it; the rest: reading and folding locally, sending, waiting)")
    PROFILE+=("$(csql "SELECT format('    %6s calls %7s ms %4s%% %7s rows %8s blocks %7s dirtied  %s', calls, round(total_exec_time),
                                     round(100 * total_exec_time / sum(total_exec_time) OVER ()), rows,
                                     shared_blks_hit + shared_blks_read, shared_blks_dirtied,
                                     left(regexp_replace(query, '\\s+', ' ', 'g'), 110))
                         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'
                        ORDER BY total_exec_time DESC LIMIT 6")")
    PROFILE+=("$(csql "SELECT format('    cloud table: %s updates, %s HOT (%s%%), %s inserts, %s deletes',
                                     n_tup_upd, n_tup_hot_upd, round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1)),
                                     n_tup_ins, n_tup_del)
                         FROM pg_stat_user_tables WHERE relid = 'dem.sampletable'::regclass")")
}

run_merge() {  # run_merge STREAM -> ms
    local s=$1 t0 t1
    load_state bench_merge "${INITIAL[$s]}"
    checkpoint_both
    t0=$(now)
    "${LPSQL[@]}" -c "COPY (SELECT gen_random_uuid(), op, id, t1, t2, score FROM bench_changes WHERE k = '$s' ORDER BY j) TO STDOUT" |
        "${CPSQL[@]}" -1 -c "CREATE TEMP TABLE landing (_uuid uuid, op text, id text, t1 text, t2 text, score integer) ON COMMIT DROP" \
            -c "COPY landing FROM STDIN" -c "$(merge_sql bench_merge landing)"
    t1=$(now)
    check_content bench_merge "$s" "the naive merge of '$s'"
    elapsed_ms "$t0" "$t1"
}

# Poll (every 20 ms, at most DRAIN_TIMEOUT) until SQL on the cloud returns t.
wait_cloud() {  # wait_cloud SQL WHAT
    local i
    for i in $(seq 1 $((DRAIN_TIMEOUT * 50))); do
        [ "$(csql "$1")" = t ] && return 0
        sleep 0.02
    done
    fail "$2: not visible in the cloud after $DRAIN_TIMEOUT s"
}

run_lr() {  # run_lr STREAM -> ms, end to end through native logical replication
    local s=$1 t0 t1 marker
    # The initial state, through replication too (untimed).
    marker=$(lsql "SELECT coalesce(max(n), 0) + 1 FROM bench_lr_done")
    "${LPSQL[@]}" -c "TRUNCATE bench_lr" -c "INSERT INTO bench_lr (_uuid, id, testcol1, testcol2, score) SELECT gen_random_uuid(), id, t1, t2, score FROM bench_exp WHERE k = '${INITIAL[$s]}'" \
        -c "INSERT INTO bench_lr_done VALUES ($marker)" >/dev/null
    wait_cloud "SELECT count(*) > 0 FROM bench_lr_done WHERE n = $marker" "the initial state of '$s' (logical replication)"
    lsql "VACUUM ANALYZE bench_lr" >/dev/null
    csql "VACUUM ANALYZE bench_lr" >/dev/null
    checkpoint_both
    marker=$((marker + 1))
    t0=$(now)
    "${LPSQL[@]}" -f "$WORK/lr-$s.sql" -c "INSERT INTO bench_lr_done VALUES ($marker)" >/dev/null
    wait_cloud "SELECT count(*) > 0 FROM bench_lr_done WHERE n = $marker" "the changes of '$s' (logical replication)"
    t1=$(now)
    check_content bench_lr "$s" "native logical replication of '$s'"
    elapsed_ms "$t0" "$t1"
}

run_e2e() {  # run_e2e STREAM -> ms, end to end through campaign in continuous mode
    local s=$1 t0 t1 last
    lsql "SELECT campaign.stop_replication('dem:sampleTable')" >/dev/null
    load_state dem.sampletable "${INITIAL[$s]}"
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    lsql "SELECT campaign.start_replication('dem:sampleTable')" >/dev/null
    checkpoint_both
    t0=$(now)
    "${LPSQL[@]}" -f "$WORK/stage-$s.sql" >/dev/null
    last=$(lsql "SELECT max(_stg_seq) FROM dem.sampletablestg")
    wait_cloud "SELECT bool_or(upto >= $last AND coalesce((SELECT min(p) FROM unnest(pending) p), $last + 1) > $last)
                  FROM campaign_replication.watermark WHERE schema_name = 'dem:sampleTable'" \
        "the changes of '$s' (campaign, continuous)"
    t1=$(now)
    lsql "SELECT campaign.stop_replication('dem:sampleTable')" >/dev/null
    check_content dem.sampletable "$s" "campaign end to end of '$s'"
    elapsed_ms "$t0" "$t1"
}

bench_banner "campaign keyed replication bench" "$(lsql "SHOW server_version")"
echo "   scratch clusters in $WORK: local port $LPORT (campaign worker, wal_level=logical), cloud port $CPORT (pg_stat_statements); unix sockets"
echo "   both: shared_buffers=256MB, max_wal_size=4GB, fsync=on, synchronous_commit=on; load average at start: $(load_average)"
echo "   campaign.batch_size=$(lsql "SHOW campaign.batch_size"), campaign.batch_memory=$(lsql "SHOW campaign.batch_memory")"
echo "   cloud tables dem.sampletable (deployed with fillfactor => $FILLFACTOR), bench_target, bench_merge, bench_lr (fillfactor $FILLFACTOR), bench_target100 (fillfactor 100): ($SHAPE_COLS)"
printf '%s\n' "$SHAPE_INDEXES" | sed 's/^/     index: /'
echo "   $NROWS changes per stream (random: $RANDOM_CHANGES over $KEYS keys; perrow over $KEYS keys), collections of $COLL, $REPEAT rounds"
echo

# Every run of a round, in order (reversed every other round).
RUNS=(copy copy100 drain:keyless drain:new drain:existing drain:mixed100 drain:perrow drain:random
      merge:new merge:existing merge:mixed100 e2e:new lr:new e2e:existing lr:existing e2e:mixed100 lr:mixed100)
if [ -n "${ONLY:-}" ]; then
    read -r -a RUNS <<<"copy $ONLY"
fi
declare -A BEST
printf '   %-5s %-16s %10s %10s  %s\n' round run ms "rows/s" detail
for r in $(seq 1 "$REPEAT"); do
    order=("${RUNS[@]}")
    if [ $((r % 2)) -eq 0 ]; then
        order=(); for ((i = ${#RUNS[@]} - 1; i >= 0; i--)); do order+=("${RUNS[i]}"); done
    fi
    for run in "${order[@]}"; do
        kind=${run%%:*} s=${run#*:} DETAIL=''
        if [ "$kind" = lr ]; then lr_resume; else lr_pause; fi
        case $kind in
            copy) ms=$(run_copy bench_target); s=keyless ;;
            copy100) ms=$(run_copy bench_target100); s=keyless ;;
            drain)
                prof=''
                if [ "$r" = 1 ] && { [ "$s" = new ] || [ "$s" = existing ] || [ "$s" = mixed100 ]; }; then prof=profile; fi
                run_drain "$s" $prof; ms=$RESULT_MS ;;
            merge) ms=$(run_merge "$s") ;;
            e2e) ms=$(run_e2e "$s") ;;
            lr) ms=$(run_lr "$s") ;;
        esac
        printf '   %-5s %-16s %10s %10s  %s\n' "$r" "$run" "$ms" "$(per_s "${NCHANGES[$s]}" "$ms")" "$DETAIL"
        if [ -z "${BEST[$run]:-}" ] || awk -v a="$ms" -v b="${BEST[$run]}" 'BEGIN { exit !(a < b) }'; then
            BEST[$run]=$ms
        fi
    done
done

# ---------------------------------------------------------------- summary
COPY_MS=${BEST[copy]}
row() {  # row LABEL RUN [FLOOR GOAL]
    local ms=${BEST[$2]:-} s=${2#*:} r
    [ "$2" != copy100 ] || s=keyless
    [ -n "$ms" ] || return 0
    r=$(ratio "$COPY_MS" "$ms")
    printf '   %-60s %7s %10s %9s  %s\n' "$1" "$r" "$(per_s "${NCHANGES[$s]}" "$ms")" "$ms" \
        "${3:+$(verdict "$r" "$3" "$4") ($3/$4)}"
}
echo
echo "== summary (best of $REPEAT; ratio = COPY pipe time of $NROWS rows / time of $NROWS changes; load average now: $(load_average))"
printf '   %-60s %7s %10s %9s  %s\n' "what" ratio "rows/s" "ms" "verdict (floor/goal)"
printf '   %-60s %7s %10s %9s\n' "COPY pipe into a table with the same indexes, fillfactor $FILLFACTOR" 1.00 "$(per_s "$NROWS" "$COPY_MS")" "$COPY_MS"
row "   (reference) the COPY pipe into the same table, fillfactor 100" copy100
row "campaign drain: keyless inserts" drain:keyless 0.5 0.8
row "campaign drain: keyed upserts, new keys" drain:new 0.5 0.8
row "campaign drain: keyed upserts, existing keys" drain:existing 0.5 0.8
row "campaign drain: mixed, blocks of 100" drain:mixed100 0.5 0.8
row "campaign drain: mixed, op changing every row, $KEYS keys" drain:perrow 0.5 0.8
[ -z "${BEST[drain:random]:-}" ] || { RAND_RPS=$(per_s "$RANDOM_CHANGES" "${BEST[drain:random]}")
printf '   %-60s %7s %10s %9s  %s\n' "campaign drain: random stream, $RANDOM_CHANGES changes/$KEYS keys" \
    "$(awk -v a="$RAND_RPS" -v b="$(per_s "$NROWS" "$COPY_MS")" 'BEGIN { printf "%.2f", a / b }')" "$RAND_RPS" "${BEST[drain:random]}" \
    "$(awk -v r="$RAND_RPS" 'BEGIN { print (r >= 30000 ? "goal met" : "BELOW GOAL") }') (30000 changes/s)"; }
row "naive merge (landing COPY + DELETE/UPDATE/ON CONFLICT): new" merge:new
row "naive merge: existing" merge:existing
row "naive merge: mixed, blocks of 100" merge:mixed100
for s in new existing mixed100; do
    row "end to end, campaign continuous: $s" "e2e:$s"
    row "end to end, native logical replication: $s" "lr:$s"
    [ -n "${BEST[lr:$s]:-}" ] && [ -n "${BEST[e2e:$s]:-}" ] || continue
    x=$(ratio "${BEST[lr:$s]}" "${BEST[e2e:$s]}")
    printf '   %-60s %7s  %s\n' "   campaign vs logical replication, $s (x)" "$x" "$(verdict "$x" 1.0 1.5) (1.0/1.5)"
done
echo
echo "== profile on the cloud (pg_stat_statements, round 1): calls, execution time, share, rows, shared blocks read or hit, dirtied"
printf '%s\n' "${PROFILE[@]}"
echo
if [ -s "$WRONG" ]; then
    echo "== WRONG CONTENT (count + md5 of id, testcol1, testcol2, score against the local model):"
    sed 's/^/   /' "$WRONG"
    exit 2
fi
echo "every timed run left the expected content (count + md5 of id, testcol1, testcol2, score against the local model)"

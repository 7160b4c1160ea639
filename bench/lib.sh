# bench/lib.sh — what the bench scripts share (sourced, not run):
#   bench_setup NAME       find pg_config, check the extension is installed,
#                          make the scratch dir $WORK (owned by postgres when
#                          run as root); sets BINDIR, WORK, RUNAS, ME
#   as_owner CMD...        run CMD as the scratch dir's owner
#   free_ports N FROM TO   print N free ports (nothing on TCP, no socket lock)
#   bench_finish RC DATADIR...  stop the scratch clusters, then remove the
#                          scratch dir (kept when KEEP=1 or on failure)
#   bench_banner TITLE PGVERSION  print "== TITLE: PostgreSQL V, N CPU(s) (model)"
#   load_average           the 1, 5 and 15 minute load averages
#   median [DECIMALS]      the median of the numbers on stdin (the mean of the
#                          middle two printed with DECIMALS places, default 1)
#   ratio A B, verdict RATIO FLOOR GOAL
#   start_cluster NAME PORT [CONF]  initdb $WORK/NAME and start it on PORT
#                          (unix socket in $WORK only) with the settings every
#                          bench uses (shared_buffers=256MB, max_wal_size=4GB,
#                          fsync and synchronous_commit on,
#                          track_commit_timestamp on) plus the CONF lines
#                          (which come last: they may override those)
#   start_sampler PID FILE, stop_sampler  sample /proc/PID/status every 50 ms
#                          (VmHWM reset first), writing the peaks of VmRSS,
#                          RssAnon and RssShmem (kB) to FILE
#   hwm_kb PID, mb KB      VmHWM of PID (kB); kB as MB with one decimal
#   same_shape TABLE_A TABLE_B  fail unless the two tables (on the cloud,
#                          through csql) have the same columns and the same
#                          indexes; sets SHAPE_COLS and SHAPE_INDEXES
#                          (TABLE_A's) for the banner
#   bench_at_exit DATADIR...  at exit: stop a running sampler ($SAMPLER_PID),
#                          then bench_finish with the script's status and
#                          these clusters (in this order: the cloud first, so
#                          that a worker waiting on it gets an error at once);
#                          SIGINT/SIGTERM exit with status 130
#   start_pair FROM TO LOCAL_CONF [CLOUD_CONF]  the usual pair of servers: two
#                          free ports in FROM-TO (LPORT, CPORT), the exit
#                          trap (bench_at_exit cloud, local), LPSQL/CPSQL
#                          (bench_psql), then start_cluster cloud on CPORT
#                          with CLOUD_CONF and local on LPORT with LOCAL_CONF
#   bench_psql LPORT [CPORT] [LDB]  set LPSQL and CPSQL, the psql command
#                          lines (-X -q, ON_ERROR_STOP, no pager) of the
#                          local server on LPORT, database LDB (default
#                          postgres), and of the cloud on CPORT (postgres)
#   lsql SQL, csql SQL     run SQL there, unaligned tuples only (-At)
#   checkpoint_both        CHECKPOINT on both servers
#   setup_campaign CPORT [DEPLOY_OPTIONS]  on the local server: the extension,
#                          the cloud (port CPORT, database postgres) as the
#                          postgres_fdw server ffda with a PUBLIC mapping, and
#                          the schema $SAMPLE_XML (dem:sampleTable) registered
#                          and deployed (campaign.deploy('dem:sampleTable'
#                          DEPLOY_OPTIONS), e.g. ", fillfactor => 50"),
#                          replication stopped (the caller starts it, or
#                          drains with campaign.replicate_now)
#   drain_conf             the local server's settings of the drain benches:
#                          campaign preloaded, one replication worker (the
#                          pool has two by default), whose pid the memory
#                          figures follow, and the campaign.batch_size and
#                          batch_memory of $BATCH_SIZE and $BATCH_MEMORY
#                          (the defaults when empty)
#   wait_cloud_rows N SECONDS  wait until the cloud's dem.sampletable holds N
#                          rows (polled every 100 ms); false after SECONDS
#   worker_pid             the pid of the local server's replication worker
#   timed_sql SQL          run SQL on the local server under psql's \timing:
#                          prints what it returns and a "Time: ..." line per
#                          statement; timing_ms and timed_value read the
#                          last statement's time (ms) and the last value
#                          back from that output (on stdin)
#   timed_drain [TIMEOUT_S]  timed_sql of campaign.replicate_now('dem:sampleTable')
#                          (statement_timeout TIMEOUT_S; none by default)
#   pgbench_tps LOG [DECIMALS]  the TPS of a pgbench log (without the initial
#                          connection time), DECIMALS places (default 1)
#   write_ingest_pgbench FILE  the pgbench script of a one-record xtk_ingest
#                          of dem:sampleTableStg (random id and score)
#   own FILE...            give the files to the scratch dir's owner
#   now, elapsed_ms T0 T1, per_s N MS, fail MESSAGE  a clock (s), the ms
#                          between two clocks, N per second over MS ms, and
#                          "$ME: MESSAGE" on stderr then exit 1

bench_setup() {
    ME=$1
    PG_CONFIG=${PG_CONFIG:-pg_config}
    command -v "$PG_CONFIG" >/dev/null || PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    BINDIR=$("$PG_CONFIG" --bindir)
    if [ ! -f "$("$PG_CONFIG" --pkglibdir)/campaign.so" ] ||
       [ ! -f "$("$PG_CONFIG" --sharedir)/extension/campaign.control" ]; then
        echo "$ME: the campaign extension is not installed; run 'make && make install' first" >&2
        exit 1
    fi
    RUNAS=()
    if [ "$(id -u)" -eq 0 ]; then RUNAS=(runuser -u postgres --); fi
    WORK=$(mktemp -d /tmp/campaign-bench.XXXXXX)
    chmod 755 "$WORK"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$WORK"; fi
}

as_owner() { "${RUNAS[@]}" "$@"; }

free_ports() {  # free_ports N FROM TO
    local want=$1 p found=0
    for p in $(seq "$2" "$3"); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$p.lock" ]; then
            echo "$p"
            found=$((found + 1))
            [ "$found" -lt "$want" ] || return 0
        fi
    done
    echo "$ME: no $want free ports in $2-$3" >&2
    return 1
}

bench_finish() {  # bench_finish RC DATADIR...
    local rc=$1 data
    shift
    [ -z "${SAMPLER_PID:-}" ] || kill "$SAMPLER_PID" 2>/dev/null || true
    for data in "$@"; do
        if [ -f "$data/postmaster.pid" ]; then
            as_owner "$BINDIR/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
        fi
    done
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "scratch dir kept: $WORK (server logs in it)" >&2
    else
        rm -rf "$WORK"
    fi
}

bench_banner() {  # bench_banner TITLE PGVERSION
    local ncpu cpu
    ncpu=$(nproc 2>/dev/null || echo '?')
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
    echo "== $1: PostgreSQL $2, $ncpu CPU(s) ${cpu:+($cpu)}"
}

load_average() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }

median() {  # median [DECIMALS] < numbers
    sort -g | awk -v d="${1:-1}" '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.*f\n", d, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
verdict() {  # verdict RATIO FLOOR GOAL
    awk -v r="$1" -v f="$2" -v g="$3" 'BEGIN { print (r >= g ? "goal met" : (r >= f ? "above floor, below goal" : "BELOW FLOOR")) }'
}

start_cluster() {  # start_cluster NAME PORT [CONF]
    local data=$WORK/$1
    as_owner "$BINDIR/initdb" -D "$data" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<EOF
# $ME: the same settings on every scratch cluster
port = $2
listen_addresses = ''
unix_socket_directories = '$WORK'
max_worker_processes = 16
shared_buffers = 256MB
max_wal_size = 4GB
fsync = on
synchronous_commit = on
track_commit_timestamp = on
${3:-}
EOF
    as_owner "$BINDIR/pg_ctl" -D "$data" -l "$WORK/$1.log" -w start >/dev/null ||
        { cat "$WORK/$1.log" >&2; exit 1; }
}

same_shape() {  # same_shape TABLE_A TABLE_B (on the cloud, through csql)
    local t cols=() idx=()
    for t in "$1" "$2"; do
        # index definitions with the index and table names taken out
        idx+=("$(csql "SELECT regexp_replace(regexp_replace(pg_get_indexdef(i.indexrelid), '^(CREATE (UNIQUE )?INDEX) \S+ ON \S+', '\1 ON t'), '\s+', ' ', 'g')
                            || CASE WHEN i.indisprimary THEN ' [primary key]' ELSE '' END
                       FROM pg_index i WHERE i.indrelid = '$t'::regclass ORDER BY 1")")
        cols+=("$(csql "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
                        FROM pg_attribute WHERE attrelid = '$t'::regclass AND attnum > 0 AND NOT attisdropped")")
    done
    if [ "${idx[0]}" != "${idx[1]}" ] || [ -z "${idx[0]}" ] || [ "${cols[0]}" != "${cols[1]}" ]; then
        echo "$ME: $2 differs from $1 in its columns or indexes:" >&2
        printf '%s:\n%s\n%s\n%s:\n%s\n%s\n' "$1" "${cols[0]}" "${idx[0]}" "$2" "${cols[1]}" "${idx[1]}" >&2
        exit 1
    fi
    SHAPE_COLS=${cols[0]} SHAPE_INDEXES=${idx[0]}
}

# Memory sampler of a process (the worker): peak VmRSS, RssAnon, RssShmem (kB) to a file.
start_sampler() {  # start_sampler PID OUTFILE
    local pid=$1 out=$2
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true   # resets VmHWM
    (
        rss=0 anon=0 shm=0
        trap 'echo "$rss $anon $shm" >"$out"; exit 0' TERM
        while :; do
            if [ -r "/proc/$pid/status" ]; then
                while read -r k v _; do
                    case $k in
                        VmRSS:) [ "$v" -le "$rss" ] || rss=$v ;;
                        RssAnon:) [ "$v" -le "$anon" ] || anon=$v ;;
                        RssShmem:) [ "$v" -le "$shm" ] || shm=$v ;;
                    esac
                done <"/proc/$pid/status"
            fi
            echo "$rss $anon $shm" >"$out"
            sleep 0.05
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
}
hwm_kb() { sed -nE 's/^VmHWM:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

bench_at_exit() {  # bench_at_exit DATADIR...
    BENCH_DATADIRS=("$@")
    trap 'bench_finish $? "${BENCH_DATADIRS[@]}"' EXIT
    trap 'exit 130' INT TERM
}

start_pair() {  # start_pair FROM TO LOCAL_CONF [CLOUD_CONF]
    local ports
    mapfile -t ports < <(free_ports 2 "$1" "$2")
    [ "${#ports[@]}" -eq 2 ] || exit 1
    LPORT=${ports[0]} CPORT=${ports[1]}
    bench_at_exit "$WORK/cloud" "$WORK/local"
    bench_psql "$LPORT" "$CPORT"
    start_cluster cloud "$CPORT" "${4:-}"
    start_cluster local "$LPORT" "$3"
}

bench_psql() {  # bench_psql LPORT [CPORT] [LDB]
    LPSQL=(as_owner "$BINDIR/psql" -X -q -h "$WORK" -p "$1" -d "${3:-postgres}" -v ON_ERROR_STOP=1 -P pager=off)
    CPSQL=(as_owner "$BINDIR/psql" -X -q -h "$WORK" -p "${2:-}" -d postgres -v ON_ERROR_STOP=1 -P pager=off)
}
lsql() { "${LPSQL[@]}" -At -c "$1"; }
csql() { "${CPSQL[@]}" -At -c "$1"; }
checkpoint_both() { lsql "CHECKPOINT" >/dev/null; csql "CHECKPOINT" >/dev/null; }

# The sample schema of the benches: a key on id and three attributes.
SAMPLE_XML='<srcSchema name="sampleTable" namespace="dem"><element name="sampleTable" autopk="true" autouuid="true" autoStg="true"><key name="id" internal="true"><keyfield xpath="@id"/></key><attribute name="id" type="string" length="20"/><attribute name="testcol1" type="string" length="255"/><attribute name="testcol2" type="string" length="255"/><attribute name="score" type="long"/></element></srcSchema>'

setup_campaign() {  # setup_campaign CPORT [DEPLOY_OPTIONS]
    "${LPSQL[@]}" >/dev/null <<EOF
SET client_min_messages = warning;
CREATE EXTENSION campaign CASCADE;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$WORK', port '$1', dbname 'postgres');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;
SELECT campaign.register_schema('$SAMPLE_XML');
SELECT campaign.deploy('dem:sampleTable'${2:-});
SELECT campaign.stop_replication('dem:sampleTable');
EOF
}

drain_conf() {
    echo "shared_preload_libraries = 'campaign'"
    echo "campaign.max_workers = 1"
    [ -z "${BATCH_SIZE:-}" ] || echo "campaign.batch_size = $BATCH_SIZE"
    [ -z "${BATCH_MEMORY:-}" ] || echo "campaign.batch_memory = $BATCH_MEMORY"
}

wait_cloud_rows() {  # wait_cloud_rows N SECONDS
    local i
    for i in $(seq 1 $(($2 * 10))); do
        [ "$(csql "SELECT count(*) FROM dem.sampletable")" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

worker_pid() { lsql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'"; }

timed_sql() {  # timed_sql SQL
    "${LPSQL[@]}" -At <<EOF
\\timing on
$1
EOF
}
timed_drain() {  # timed_drain [TIMEOUT_S]
    timed_sql "SET statement_timeout = '${1:-0}s';
SELECT campaign.replicate_now('dem:sampleTable');"
}
timing_ms() { sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -n1; }
timed_value() { grep -v '^Time: ' | tail -n1; }

pgbench_tps() {  # pgbench_tps LOG [DECIMALS]
    sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$1" | awk -v d="${2:-1}" '{ printf "%.*f\n", d, $1 }'
}

write_ingest_pgbench() {  # write_ingest_pgbench FILE
    cat >"$1" <<'EOF'
\set id random(1, 2000000000)
\set score random(0, 1000000)
SELECT campaign.xtk_ingest('<sampleTableStg id="' || :id || '" testcol1="value-' || :id || ' lorem ipsum" testcol2="second column ' || :score || ' with some text" score="' || :score || '" xtkschema="dem:' || 'sampleTableStg"/>');
EOF
    own "$1"
}

own() { [ "${#RUNAS[@]}" -eq 0 ] || chown postgres: "$@"; }

now() { date +%s.%N; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", n / (ms / 1000) }'; }
fail() { echo "$ME: $*" >&2; exit 1; }

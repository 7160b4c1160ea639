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
#   start_sampler PID FILE, stop_sampler  sample /proc/PID/status every 50 ms
#                          (VmHWM reset first), writing the peaks of VmRSS,
#                          RssAnon and RssShmem (kB) to FILE
#   hwm_kb PID, mb KB      VmHWM of PID (kB); kB as MB with one decimal
#   same_shape TABLE_A TABLE_B  fail unless the two tables (on the server the
#                          caller's csql function queries) have the same
#                          columns and the same indexes; sets SHAPE_COLS and
#                          SHAPE_INDEXES (TABLE_A's) for the banner

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

same_shape() {  # same_shape TABLE_A TABLE_B (uses the caller's csql)
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

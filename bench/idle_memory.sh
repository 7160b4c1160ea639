#!/usr/bin/env bash
# bench/idle_memory.sh — the replication worker's private memory once a
# drain is over, and where it is, in one run:
#
#   $ROUNDS rounds, each: replication stopped, $NROWS keyed upserts of new
#   keys staged (xtk_ingest_ext collections of $COLL records), drained with
#   campaign.replicate_now(); the worker's RssAnon (/proc/<pid>/status)
#   before the first round, at its peak during each drain (sampled every
#   50 ms) and once idle after it (2 s later).  A figure that grows round
#   after round is a leak; one that stays is memory kept for reuse.
#
#   Then, idle after the last round, where that memory is:
#     - its memory contexts: the "Grand total" of
#       pg_log_backend_memory_contexts() (server log), before and after;
#     - its anonymous memory by mapping (/proc/<pid>/smaps): the malloc heap
#       ([heap]) and the other anonymous mappings (glibc's mmapped chunks:
#       blocks larger than its mmap threshold), with the first printable
#       strings of each mapping of 256 kB or more (whose buffer it is);
#     - with gdb installed: glibc's mallinfo2() (in use, free in the heap,
#       mmapped) and its thresholds (mp_.mmap_threshold, trim_threshold:
#       raised by glibc after an mmapped chunk is freed), then RssAnon after
#       malloc_trim(0) (what glibc gives back when asked).
#
# Usage:  bash bench/idle_memory.sh     (as root, to read the worker's memory
#                                        and attach gdb)
# Knobs (environment): NROWS=200000 COLL=10000 ROUNDS=3 BATCH_SIZE=
#                      BATCH_MEMORY= (as bench/replication.sh) KEEP=1
#                      PG_CONFIG=...
#
# The extension must be installed first (make && make install).  Two scratch
# clusters (bench/lib.sh's start_pair, drain_conf: one replication worker).
set -euo pipefail

NROWS=${NROWS:-200000}
COLL=${COLL:-10000}
ROUNDS=${ROUNDS:-3}
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "bench/idle_memory.sh: run it as root (it reads the worker's memory)" >&2; exit 1; }
bench_setup bench/idle_memory.sh
start_pair 55600 55699 "$(drain_conf)"
setup_campaign "$CPORT"
WPID=$(worker_pid)
[ -n "$WPID" ] || fail "no campaign replication worker running on the local server"

anon_kb() { sed -nE 's/^RssAnon:[[:space:]]+([0-9]+) kB/\1/p' "/proc/$WPID/status"; }
# The Grand total line of the worker's memory contexts, from the server log.
contexts() {
    local from
    from=$(wc -l <"$WORK/local.log")
    lsql "SELECT pg_log_backend_memory_contexts($WPID)" >/dev/null
    sleep 1.5
    tail -n +"$((from + 1))" "$WORK/local.log" | sed -nE 's/^.*(Grand total: .*)$/\1/p' | tail -n1
}
# Anonymous memory (kB) of the heap and of the other anonymous mappings,
# then one line per such mapping of 256 kB or more.
mappings() {
    python3 - "$WPID" <<'PY'
import re, sys
pid = sys.argv[1]
regions, cur = [], None
for line in open(f'/proc/{pid}/smaps'):
    m = re.match(r'^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$', line)
    if m:
        cur = dict(lo=int(m.group(1), 16), hi=int(m.group(2), 16), name=m.group(3).strip(), anon=0)
        regions.append(cur)
    elif line.startswith('Anonymous:') and cur is not None:
        cur['anon'] = int(line.split()[1])
heap = sum(r['anon'] for r in regions if r['name'] == '[heap]')
other = [r for r in regions if r['name'] == '']
print(f"   [heap] {heap} kB, other anonymous mappings {sum(r['anon'] for r in other)} kB")
with open(f'/proc/{pid}/mem', 'rb') as mem:
    for r in other:
        if r['anon'] >= 256:
            mem.seek(r['lo'])
            text = re.findall(rb'[\x20-\x7e\t]{12,}', mem.read(4096))
            print(f"     mapping of {(r['hi'] - r['lo']) // 1024} kB, {r['anon']} kB resident, starting with:",
                  ' | '.join(t[:48].decode().replace('\t', ' ') for t in text[:3]))
PY
}

bench_banner "campaign worker idle memory" "$(lsql "SHOW server_version")"
echo "   $ROUNDS rounds of $NROWS keyed upserts (collections of $COLL); campaign.batch_size=$(lsql "SHOW campaign.batch_size"), batch_memory=$(lsql "SHOW campaign.batch_memory"); load average $(load_average)"
BEFORE_CTX=$(contexts)
echo "   worker $WPID idle before the first drain: RssAnon $(anon_kb) kB"
mappings
for r in $(seq 1 "$ROUNDS"); do
    lsql "SELECT campaign.stop_replication('dem:sampleTable')" >/dev/null
    lsql "TRUNCATE dem.sampletablestg" >/dev/null
    csql "TRUNCATE dem.sampletable" >/dev/null
    lsql "SELECT count(campaign.xtk_ingest_ext(doc)) FROM (
            SELECT '<sampleTableStg-collection xtkschema=\"dem:sampleTableStg\" _key=\"@id\">'
                   || string_agg(format('<sampleTableStg id=\"r${r}k%s\" testcol1=\"value %s\" testcol2=\"other %s\" score=\"%s\"/>', g, g, g, g), '')
                   || '</sampleTableStg-collection>' AS doc
              FROM generate_series(1, $NROWS) g GROUP BY (g - 1) / $COLL) c" >/dev/null
    lsql "VACUUM ANALYZE dem.sampletablestg"
    start_sampler "$WPID" "$WORK/mem.out"
    out=$(timed_drain) || fail "the drain of round $r failed"
    stop_sampler
    read -r _ peak _ <"$WORK/mem.out"
    [ "$(timed_value <<<"$out")" = "$NROWS" ] || fail "round $r: replicate_now returned $(timed_value <<<"$out"), not $NROWS"
    sleep 2
    printf '   round %s: drained in %s ms; RssAnon peak %s kB, idle after %s kB\n' "$r" "$(timing_ms <<<"$out")" "$peak" "$(anon_kb)"
done
echo "   idle after the last drain:"
mappings
echo "   memory contexts before: $BEFORE_CTX"
echo "   memory contexts after:  $(contexts)"
if command -v gdb >/dev/null; then
    gdb -p "$WPID" -batch -ex 'print (long) mallinfo2().uordblks' -ex 'print (long) mallinfo2().fordblks' \
        -ex 'print (long) mallinfo2().hblkhd' -ex 'print (long) mp_.mmap_threshold' -ex 'print (long) mp_.trim_threshold' \
        2>/dev/null | sed -nE 's/^\$[0-9]+ = //p' | paste -sd' ' |
        awk '{ printf "   glibc: %d kB in use in the heap, %d kB free in it, %d kB in mmapped chunks; mmap threshold %d kB, trim threshold %d kB\n", $1 / 1024, $2 / 1024, $3 / 1024, $4 / 1024, $5 / 1024 }'
    gdb -p "$WPID" -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1
    echo "   after malloc_trim(0): RssAnon $(anon_kb) kB"
    mappings
else
    echo "   (gdb not installed: no glibc figures)"
fi
echo "   load average at end: $(load_average)"

#!/usr/bin/env bash
# fuzz.sh — libFuzzer on the record parser and the schema parser (`make fuzz`,
# and the last stage of `make test`).
#   1. builds and installs the extension (CREATE EXTENSION needs it), then
#      builds the fuzz module with clang: every src/*.c file plus
#      test/fuzz/campaign_fuzz.c, instrumented with -fsanitize=fuzzer-no-link
#      and address, linked with libFuzzer's runtime (no main);
#   2. starts a scratch cluster as postgres, runs test/fuzz/setup.sql (the
#      extension and the schemas the documents name), stops it;
#   3. proves the detectors are live: runs the canary target once per
#      planted defect (a leak, a heap overflow, an internal error) and
#      requires each to be reported;
#   4. per target (record, schema): starts a single-user backend with ASan's
#      runtime preloaded and the fuzz module in shared_preload_libraries and
#      calls campaign_fuzz(target, libFuzzer arguments).  libFuzzer starts
#      from the committed seeds (test/fuzz/corpus/TARGET) plus what it finds,
#      kept in the scratch dir, and stops after FUZZ_SECONDS (60).  A target
#      passes when libFuzzer reports "Done N runs" and nothing else: any
#      crash, ASan or LeakSanitizer report, timeout, internal (XX) error or
#      artifact fails it, and its log is printed;
#   5. ends with a line "fuzz: N passed, N failed" (canaries and targets);
#      exits non-zero on failure.
# FUZZ_TARGETS="record schema" and FUZZ_SECONDS=60 choose what runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-record schema}
CLANG=${CLANG:-clang-14}
cd "$ROOT"

command -v "$CLANG" >/dev/null || { echo "fuzz.sh: $CLANG is not installed (bash scripts/install-deps.sh fuzz)" >&2; exit 1; }
RT=$("$CLANG" -print-runtime-dir)
ASAN_RT=$RT/libclang_rt.asan-x86_64.so
FUZZER_RT=$RT/libclang_rt.fuzzer_no_main-x86_64.a
for f in "$ASAN_RT" "$FUZZER_RT"; do
    [ -f "$f" ] || { echo "fuzz.sh: $f is missing (libclang-rt-14-dev)" >&2; exit 1; }
done
SUDO=() RUNAS=()
if [ "$(id -u)" -eq 0 ]; then RUNAS=(runuser -u postgres --); else SUDO=(sudo); fi

echo "=== fuzz: build and install the extension, build the fuzz module"
make PG_CONFIG="$PG_CONFIG" >/dev/null
"${SUDO[@]}" make install PG_CONFIG="$PG_CONFIG" >/dev/null

WORK=$(mktemp -d /tmp/campaign-fuzz.XXXXXX)
mkdir -p "$WORK/build" "$WORK/artifacts"
CFLAGS=(-g -O1 -fPIC -fno-omit-frame-pointer -fsanitize=address,fuzzer-no-link
        -Wall -Wno-ignored-attributes -D_GNU_SOURCE -I"$ROOT/src"
        -DCAMPAIGN_VERSION="\"$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/campaign.control")\""
        -I"$("$PG_CONFIG" --includedir-server)" -I"$("$PG_CONFIG" --includedir)"
        $(xml2-config --cflags))
objs=()
for src in src/*.c test/fuzz/campaign_fuzz.c; do
    obj="$WORK/build/$(basename "$src" .c).o"
    "$CLANG" "${CFLAGS[@]}" -c "$src" -o "$obj"
    objs+=("$obj")
done
# -Bsymbolic: the module's coverage callbacks bind to the libFuzzer copy
# linked in, not to the weak stubs of the preloaded ASan runtime.
"$CLANG" -shared -fsanitize=address,fuzzer-no-link -shared-libasan -o "$WORK/campaign_fuzz.so" \
    "${objs[@]}" -Wl,--whole-archive "$FUZZER_RT" -Wl,--no-whole-archive -lstdc++ \
    $(xml2-config --libs) -lpq -lmicrohttpd -Wl,-Bsymbolic
"$CLANG" -shared -fPIC -O1 -o "$WORK/asan_preload.so" test/fuzz/asan_preload.c

# The seeds, dictionary and suppressions are read by the postgres user.
cp -R test/fuzz "$WORK/fuzz"
for t in $FUZZ_TARGETS; do
    mkdir -p "$WORK/corpus/$t"
done
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$WORK"; fi

echo "=== fuzz: scratch cluster in $WORK/data"
"${RUNAS[@]}" "$BINDIR/initdb" -D "$WORK/data" -E UTF8 --locale=C.UTF-8 -A trust >"$WORK/initdb.log"
"${RUNAS[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -w -l "$WORK/setup-server.log" \
    -o "-k $WORK -c listen_addresses=''" start >/dev/null
setup_rc=0
"${RUNAS[@]}" "$BINDIR/psql" -h "$WORK" -X -q -v ON_ERROR_STOP=1 -d postgres \
    -f "$WORK/fuzz/setup.sql" >"$WORK/setup.log" 2>&1 || setup_rc=$?
"${RUNAS[@]}" "$BINDIR/pg_ctl" -D "$WORK/data" -w stop >/dev/null
if [ "$setup_rc" -ne 0 ]; then
    cat "$WORK/setup.log"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

# ASan: a report ends the process; LeakSanitizer checks each input that
# libFuzzer sees allocate more than it frees, not the backend's exit (the
# server keeps its caches until then by design).
ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:leak_check_at_exit=0:allocator_may_return_null=0"
LSAN_OPTIONS="suppressions=$WORK/fuzz/lsan.supp:print_suppressions=0"
SYMBOLIZER=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)

# fuzz TARGET LOG LIBFUZZER-ARG...: one single-user backend running
# campaign_fuzz(TARGET, ARRAY[LIBFUZZER-ARG...]); returns its exit status.
fuzz() {
    local target=$1 log=$2 array
    shift 2
    array=$(printf "'%s', " "$@")
    printf '%s\n' \
        "CREATE FUNCTION campaign_fuzz(text, text[]) RETURNS integer AS '$WORK/campaign_fuzz.so', 'campaign_fuzz' LANGUAGE C STRICT;" \
        "SELECT campaign_fuzz('$target', ARRAY[${array%, }]);" |
        "${RUNAS[@]}" env LD_PRELOAD="$ASAN_RT $WORK/asan_preload.so" \
            ASAN_OPTIONS="$ASAN_OPTIONS" LSAN_OPTIONS="$LSAN_OPTIONS" \
            ${SYMBOLIZER:+ASAN_SYMBOLIZER_PATH=$SYMBOLIZER} \
            "$BINDIR/postgres" --single -D "$WORK/data" -F \
            -c shared_preload_libraries="$WORK/campaign_fuzz.so" postgres >"$log" 2>&1
}
REPORTED='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|==[0-9]+==ERROR|campaign_fuzz: internal error|deadly signal|SUMMARY: '
passed=0 failed=0

# The detectors first: each planted defect of the canary target must end
# the run with its report, or a clean run below would prove nothing.
for defect in "leak:ERROR: LeakSanitizer: detected memory leaks" \
              "overflow:ERROR: AddressSanitizer: heap-buffer-overflow" \
              "internal:campaign_fuzz: internal error XX000"; do
    name=${defect%%:*} expect=${defect#*:}
    mkdir -p "$WORK/canary/$name"
    printf '%s' "$name" >"$WORK/canary/$name/input"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$WORK/canary"; fi
    rc=0
    fuzz canary "$WORK/canary-$name.log" -runs=0 "-artifact_prefix=$WORK/canary/$name-" \
        "$WORK/canary/$name" || rc=$?
    if [ "$rc" -ne 0 ] && grep -qF "$expect" "$WORK/canary-$name.log"; then
        passed=$((passed + 1))
        echo "fuzz canary $name: reported as expected (\"$expect\", exit $rc)"
    else
        failed=$((failed + 1))
        echo "fuzz canary $name: FAILED, the planted defect was not reported (exit $rc)"
        tail -n 40 "$WORK/canary-$name.log"
    fi
done

for t in $FUZZ_TARGETS; do
    log="$WORK/$t.log"
    echo "=== fuzz: target $t for ${FUZZ_SECONDS}s"
    rc=0
    fuzz "$t" "$log" "-max_total_time=$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=4096 \
        -max_len=16384 -print_final_stats=1 "-dict=$WORK/fuzz/xml.dict" \
        "-artifact_prefix=$WORK/artifacts/$t-" "$WORK/corpus/$t" "$WORK/fuzz/corpus/$t" || rc=$?
    runs=$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/p' "$log")
    secs=$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/p' "$log")
    files=$(find "$WORK/corpus/$t" "$WORK/fuzz/corpus/$t" -type f | wc -l)
    corpus=$(sed -nE 's/^#[0-9]+[[:space:]]+DONE .* corp: ([0-9]+\/[0-9]+[a-zA-Z]*) .*/\1/p' "$log")
    cov=$(sed -nE 's/^#[0-9]+[[:space:]]+DONE +cov: ([0-9]+) .*/\1/p' "$log")
    if [ "$rc" -eq 0 ] && [ -n "$runs" ] && ! compgen -G "$WORK/artifacts/$t-*" >/dev/null &&
       ! grep -qE "$REPORTED" "$log"; then
        passed=$((passed + 1))
        echo "fuzz $t: ok, $runs runs in ${secs}s ($((runs / (secs > 0 ? secs : 1))) exec/s), coverage $cov edges, corpus $corpus (units/bytes), $files files"
    else
        failed=$((failed + 1))
        echo "fuzz $t: FAILED (exit $rc); log $log, artifacts:"
        ls -l "$WORK/artifacts"
        grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 80
    fi
done

if [ "$failed" -eq 0 ]; then rm -rf "$WORK"; else echo "fuzz: scratch dir kept: $WORK"; fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

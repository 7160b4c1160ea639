#!/usr/bin/env bash
# test.sh — the project's test command (`make test`).
#   1. builds the extension (make) and installs it (make install, via sudo
#      when not root);
#   2. copies the tree to a scratch dir and runs `make installcheck` there:
#      pg_regress (sql/ + expected/, temp instance even when PGHOST/PGPORT
#      are set: USE_EXISTING=0) then the TAP tests
#      (test/t/*.pl). As root it runs them as the `postgres` user, since
#      initdb refuses root;
#   3. runs the fuzz targets (scripts/fuzz.sh: libFuzzer and AddressSanitizer
#      on the record and schema parsers, FUZZ_SECONDS=60 each), one test each;
#   4. on failure prints regression.diffs and the TAP/server logs;
#   5. ends with a line "N passed, N failed"; exits non-zero if anything
#      failed or if no test ran.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
cd "$ROOT"

SUDO=() RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
    RUNAS=(runuser -u postgres --)
else
    SUDO=(sudo)
fi

echo "=== build and install"
if ! make PG_CONFIG="$PG_CONFIG" || ! "${SUDO[@]}" make install PG_CONFIG="$PG_CONFIG"; then
    echo "test.sh: build or install failed"
    echo "0 passed, 1 failed"
    exit 1
fi

WORK=$(mktemp -d /tmp/campaign-test.XXXXXX)
tar -C "$ROOT" --exclude=./.git --exclude=./tmp_check --exclude=./tmp_check_regress \
    --exclude=./results --exclude=./demo_data --exclude=./bench_data -cf - . | tar -C "$WORK" -xf -
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$WORK"; fi
echo "=== tests run in $WORK as $("${RUNAS[@]}" id -un)"

# pg_regress and TAP run as two make calls so that a pg_regress failure does
# not hide the TAP results.
r_rc=0 t_rc=0
if compgen -G "$WORK/sql/*.sql" >/dev/null; then
    echo "=== pg_regress"
    set +e
    "${RUNAS[@]}" make -C "$WORK" installcheck PG_CONFIG="$PG_CONFIG" TAP_TESTS= USE_EXISTING=0 2>&1 | tee "$WORK/regress.log"
    r_rc=${PIPESTATUS[0]}
    set -e
else
    echo "=== pg_regress: no tests in sql/" | tee "$WORK/regress.log"
fi
if compgen -G "$WORK/test/t/*.pl" >/dev/null; then
    echo "=== TAP"
    set +e
    "${RUNAS[@]}" make -C "$WORK" installcheck PG_CONFIG="$PG_CONFIG" REGRESS= 2>&1 | tee "$WORK/tap.log"
    t_rc=${PIPESTATUS[0]}
    set -e
else
    echo "=== TAP: no tests in test/t/" | tee "$WORK/tap.log"
fi

echo "=== fuzz"
set +e
bash "$ROOT/scripts/fuzz.sh" 2>&1 | tee "$WORK/fuzz.log"
f_rc=${PIPESTATUS[0]}
set -e

# pg_regress (PG 15) prints "test NAME ... ok" / "     NAME ... FAILED".
r_pass=$(grep -cE '^(test |     )\S+ +\.\.\. ok' "$WORK/regress.log" || true)
r_fail=$(grep -cE '^(test |     )\S+ +\.\.\. (FAILED|failed)' "$WORK/regress.log" || true)
# prove: "Files=F, Tests=T, ..." and per failed file "(Wstat: W Tests: T Failed: N)";
# a file that died with no failed subtest (bad plan, crash) counts as 1 failure.
t_total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$WORK/tap.log" | tail -n1)
read -r t_subfail t_badfile < <(sed -nE 's/^\S+ +\(Wstat: .* Tests: [0-9]+ Failed: ([0-9]+)\)$/\1/p' "$WORK/tap.log" |
    awk '{ if ($1 > 0) s += $1; else b++ } END { print s + 0, b + 0 }')
t_total=${t_total:-0}
t_pass=$(( t_total > t_subfail ? t_total - t_subfail : 0 ))
t_fail=$(( t_subfail + t_badfile ))
# a suite that failed with no failure counted (server crash, ...) counts 1.
if [ "$r_rc" -ne 0 ] && [ "$r_fail" -eq 0 ]; then r_fail=1; fi
if [ "$t_rc" -ne 0 ] && [ "$t_fail" -eq 0 ]; then t_fail=1; fi
# fuzz.sh: "fuzz: N passed, N failed".
read -r f_pass f_fail < <(sed -nE 's/^fuzz: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$WORK/fuzz.log" | tail -n1)
f_pass=${f_pass:-0} f_fail=${f_fail:-0}
if [ "$f_rc" -ne 0 ] && [ "$f_fail" -eq 0 ]; then f_fail=1; fi

rc=0
if [ $((r_fail + t_fail + f_fail)) -ne 0 ]; then
    echo "=== FAILURE DETAILS (scratch dir kept: $WORK)"
    for f in "$WORK/regression.diffs" "$WORK"/log/postmaster.log "$WORK"/tmp_check/log/*; do
        [ -s "$f" ] || continue
        echo "----- $f (last 400 lines)"
        tail -n 400 "$f"
    done
    rc=1
else
    rm -rf "$WORK"
fi

echo "pg_regress: $r_pass passed, $r_fail failed; TAP: $t_pass passed, $t_fail failed;" \
     "fuzz: $f_pass passed, $f_fail failed"
total_pass=$((r_pass + t_pass + f_pass)) total_fail=$((r_fail + t_fail + f_fail))
echo "$total_pass passed, $total_fail failed"
if [ $((total_pass + total_fail)) -eq 0 ]; then
    echo "test.sh: no tests ran" >&2
    exit 1
fi
exit "$rc"

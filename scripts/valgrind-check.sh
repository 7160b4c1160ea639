#!/usr/bin/env bash
# valgrind-check.sh — the pg_regress suite against a server running under
# valgrind memcheck (`make valgrind-check`).
#   Builds and installs the extension, then runs `make installcheck` (the
#   pg_regress part) as the postgres user with a bindir whose `postgres` is a
#   wrapper that starts the real server under valgrind (initdb's bootstrap
#   runs bare).  PostgreSQL's known false positives (uninitialised padding
#   in buffers written to files and sockets, the regex cache's overlapping
#   copy) are suppressed by test/valgrind/postgres.supp.  30_hostile is left
#   out: its 200,000-record collections run under a statement_timeout sized
#   for native speed.  Prints every error valgrind reports, then
#   "valgrind: N errors in M processes"; exits non-zero on any test failure
#   or valgrind error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
cd "$ROOT"

command -v valgrind >/dev/null || { echo "valgrind-check.sh: valgrind is not installed" >&2; exit 1; }
SUDO=() RUNAS=()
if [ "$(id -u)" -eq 0 ]; then RUNAS=(runuser -u postgres --); else SUDO=(sudo); fi

make PG_CONFIG="$PG_CONFIG"
"${SUDO[@]}" make install PG_CONFIG="$PG_CONFIG"

WORK=$(mktemp -d /tmp/campaign-valgrind.XXXXXX)
tar -C "$ROOT" --exclude=./.git --exclude=./tmp_check --exclude=./tmp_check_regress \
    --exclude=./results --exclude=./demo_data -cf - . | tar -C "$WORK" -xf -
mkdir -p "$WORK/vgbin" "$WORK/vglog"
for f in "$BINDIR"/*; do ln -s "$f" "$WORK/vgbin/"; done
rm "$WORK/vgbin/postgres"
cat >"$WORK/vgbin/postgres" <<WRAP
#!/bin/sh
case " \$* " in
  *" --boot "*|*" --single "*|*" -C "*|*" -V "*|*" --version "*|*" --describe-config "*)
    exec "$BINDIR/postgres" "\$@";;
esac
exec valgrind --quiet --trace-children=yes --leak-check=no \\
  --suppressions="$WORK/test/valgrind/postgres.supp" \\
  --log-file="$WORK/vglog/vg.%p.log" "$BINDIR/postgres" "\$@"
WRAP
chmod +x "$WORK/vgbin/postgres"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$WORK"; fi

# 30_hostile stages 200,000-record collections under a statement_timeout
# sized for native speed; every other file runs.
TESTS=$(cd "$WORK/sql" && ls *.sql | sed 's/\.sql$//' | grep -v '^30_hostile$' | tr '\n' ' ')
set +e
"${RUNAS[@]}" make -C "$WORK" installcheck PG_CONFIG="$PG_CONFIG" TAP_TESTS= REGRESS="$TESTS" bindir="$WORK/vgbin"
rc=$?
set -e

errors=0 procs=0
for log in "$WORK"/vglog/vg.*.log; do
    [ -s "$log" ] || continue
    n=$(grep -cE '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and destination|Argument|Jump to|Process terminating)' "$log" || true)
    [ "$n" -gt 0 ] || continue
    procs=$((procs + 1)) errors=$((errors + n))
    echo "----- $log"
    cat "$log"
done
echo "valgrind: $errors errors in $procs processes (logs in $WORK/vglog)"
[ "$rc" -eq 0 ] && [ "$errors" -eq 0 ]

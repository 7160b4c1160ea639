#!/usr/bin/env bash
# install-deps.sh [fuzz] [valgrind] [package] [bench] — install the Debian 12 packages
# needed to build and test the campaign extension (`make deps`), libmicrohttpd
# (with GnuTLS) for the HTTP endpoint and openssl, curl and node/npm for its
# tests included; `fuzz` adds clang's libFuzzer, AddressSanitizer and
# symbolizer (make fuzz, make test), `valgrind` adds valgrind (make
# valgrind-check), `package` the Debian packaging tools and the PGXN
# META.json validator (make deb, make test: test/t/060_package.pl), `bench`
# wrk (the HTTP client of bench/http.sh).
# Idempotent: a quick no-op
# when all are present; otherwise one `apt-get update` and one `apt-get
# install`. Runs as
# root, or through sudo otherwise. Does not use Debian's auto-created `main`
# cluster. Checks that PostgreSQL 15's pg_config points at its own bindir.
set -euo pipefail

PG_BINDIR=/usr/lib/postgresql/15/bin
PKGS=(postgresql-15 postgresql-server-dev-15 libpq-dev libxml2-dev libipc-run-perl
      make gcc pkg-config libmicrohttpd-dev openssl curl)
for extra in "$@"; do
    case $extra in
        fuzz) PKGS+=(clang-14 libclang-rt-14-dev llvm-14) ;;
        valgrind) PKGS+=(valgrind) ;;
        package) PKGS+=(debhelper postgresql-server-dev-all devscripts fakeroot dpkg-dev
                        binutils python3-jsonschema) ;;
        bench) PKGS+=(wrk) ;;
        *) echo "install-deps: unknown group $extra (fuzz, valgrind, package, bench)" >&2; exit 1 ;;
    esac
done
# postgresql-contrib-15 is a virtual package in Debian 12 (provided by
# postgresql-15); check for what we need from it, postgres_fdw, instead.
FDW_CONTROL=/usr/share/postgresql/15/extension/postgres_fdw.control

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
    SUDO=(sudo)
fi

missing=()
for p in "${PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
# node and npm run Adobe's JavaScript SDK against the HTTP endpoint (TAP
# 041); any installation will do (Debian's, or NodeSource's nodejs, which
# brings npm), so look for the commands.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -f "$FDW_CONTROL" ] || missing+=(postgresql-contrib-15)

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Sanity checks: PG 15's pg_config, postgres_fdw, xml2-config.
bindir=$("$PG_BINDIR/pg_config" --bindir)
if [ "$bindir" != "$PG_BINDIR" ]; then
    echo "install-deps: $PG_BINDIR/pg_config reports bindir $bindir" >&2
    exit 1
fi
[ -f "$FDW_CONTROL" ] || { echo "install-deps: postgres_fdw missing ($FDW_CONTROL)" >&2; exit 1; }
command -v xml2-config >/dev/null || { echo "install-deps: xml2-config missing" >&2; exit 1; }
if [ "$(pg_config --bindir 2>/dev/null || true)" != "$PG_BINDIR" ]; then
    echo "install-deps: note: 'pg_config' on PATH is not PostgreSQL 15's;" \
         "use PG_CONFIG=$PG_BINDIR/pg_config (the scripts do)" >&2
fi
echo "install-deps: ok (PostgreSQL $("$PG_BINDIR/pg_config" --version | awk '{print $2}'), bindir $bindir)"

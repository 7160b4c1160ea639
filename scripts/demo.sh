#!/usr/bin/env bash
# demo.sh — end-to-end demo (`make demo`).
#   Builds and installs the extension (sudo when not root), starts a scratch
#   PostgreSQL 15 cluster "local" (as user postgres when run as root) with
#   shared_preload_libraries = 'campaign' and a second one, "cloud", then runs
#   scripts/demo.sql with psql -e on local: CREATE EXTENSION, declare the
#   cloud as the postgres_fdw server ffda, register and deploy a schema,
#   ingest single records and a 10,000-record batch, and watch the worker
#   replicate them; finally counts the rows on the cloud itself. Then the
#   HTTP endpoint of "local" (campaign.http_port, on 127.0.0.1): a SOAP
#   Logon and an Ingest sent with curl, as a Campaign client would.
#   Data lives in ./demo_data/<cluster> (or $CAMPAIGN_DEMO_DIR, or
#   /tmp/campaign-demo when ./demo_data is unusable); sockets and logs beside
#   it. Clusters are stopped on exit and their data kept for inspection; a
#   re-run starts clean. Add clusters with: start_cluster NAME PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
cd "$ROOT"

SUDO=() RUNAS=()
if [ "$(id -u)" -eq 0 ]; then RUNAS=(runuser -u postgres --); else SUDO=(sudo); fi
as_owner() { "${RUNAS[@]}" "$@"; }

echo "=== build and install"
make PG_CONFIG="$PG_CONFIG"
"${SUDO[@]}" make install PG_CONFIG="$PG_CONFIG"

# Stop the clusters of a previous (interrupted) run, then start clean.
stop_all() {
    local pidfile
    for pidfile in "$1"/*/postmaster.pid; do
        if [ -f "$pidfile" ]; then
            as_owner "$BINDIR/pg_ctl" -D "$(dirname "$pidfile")" -m fast -w stop >/dev/null || true
        fi
    done
}
prepare_dir() {
    stop_all "$1" 2>/dev/null || true
    rm -rf "$1" && mkdir -p "$1" || return 1
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$1"; fi
    # the owner must reach it, and socket paths must stay short (< 100 bytes)
    as_owner test -w "$1" && [ ${#1} -lt 80 ]
}
DEMO_DIR=${CAMPAIGN_DEMO_DIR:-$ROOT/demo_data}
if ! prepare_dir "$DEMO_DIR" 2>/dev/null; then
    [ "$DEMO_DIR" = "$ROOT/demo_data" ] && rm -rf "$DEMO_DIR"
    DEMO_DIR=/tmp/campaign-demo
    prepare_dir "$DEMO_DIR"
fi
echo "=== demo data in $DEMO_DIR"
trap 'stop_all "$DEMO_DIR"' EXIT

# start_cluster NAME PORT [SETTINGS]: initdb + start a cluster in
# $DEMO_DIR/NAME listening only on the unix socket $DEMO_DIR/.s.PGSQL.PORT (no
# TCP, so no port clash), with extra postgresql.conf SETTINGS.
start_cluster() {
    local name=$1 port=$2 data=$DEMO_DIR/$1
    as_owner "$BINDIR/initdb" -D "$data" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<EOF
# added by scripts/demo.sh
port = $port
listen_addresses = ''
unix_socket_directories = '$DEMO_DIR'
shared_preload_libraries = 'campaign'
max_worker_processes = 16
${3:-}
EOF
    as_owner "$BINDIR/pg_ctl" -D "$data" -l "$DEMO_DIR/$name.log" -w start >/dev/null ||
        { cat "$DEMO_DIR/$name.log"; return 1; }
    echo "=== cluster $name started: psql -h $DEMO_DIR -p $port postgres (log: $DEMO_DIR/$name.log)"
}
# psql_on PORT [ARGS...]: run psql on a demo cluster (reads SQL from stdin with -f -).
psql_on() {
    local port=$1; shift
    as_owner "$BINDIR/psql" -X -h "$DEMO_DIR" -p "$port" -d postgres -v ON_ERROR_STOP=1 -P pager=off "$@"
}

LOCAL_PORT=5461
CLOUD_PORT=5462
# The HTTP endpoint: the first free TCP port from 8080 on 127.0.0.1.
HTTP_PORT=8080
while (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; do HTTP_PORT=$((HTTP_PORT + 1)); done
start_cluster cloud "$CLOUD_PORT"
start_cluster local "$LOCAL_PORT" "campaign.http_port = $HTTP_PORT
campaign.http_listen_addresses = '127.0.0.1'"

echo "=== running scripts/demo.sql on local"
psql_on "$LOCAL_PORT" -e -v cloud_host="$DEMO_DIR" -v cloud_port="$CLOUD_PORT" -f - <"$ROOT/scripts/demo.sql"

echo "=== SOAP over HTTP: http://127.0.0.1:$HTTP_PORT/nl/jsp/soaprouter.jsp"
psql_on "$LOCAL_PORT" -e -c "CREATE ROLE demo_api LOGIN PASSWORD 'demo secret' IN ROLE campaign_ingest"
SOAP_URL="http://127.0.0.1:$HTTP_PORT/nl/jsp/soaprouter.jsp"
echo "--- Logon (curl)"
LOGON=$(curl -sS -H 'Content-Type: text/xml; charset=utf-8' -H 'SoapAction: xtk:session#Logon' --data-binary @- "$SOAP_URL" <<'EOF'
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
<soapenv:Header/>
<soapenv:Body>
  <urn:Logon><urn:sessiontoken/><urn:strLogin>demo_api</urn:strLogin><urn:strPassword>demo secret</urn:strPassword><urn:elemParameters/></urn:Logon>
</soapenv:Body>
</soapenv:Envelope>
EOF
)
echo "$LOGON"
TOKEN=$(printf '%s' "$LOGON" | sed -nE 's/.*<pstrSessionToken[^>]*>([^<]+)<.*/\1/p')
[ -n "$TOKEN" ] || { echo "demo: Logon over HTTP failed" >&2; exit 1; }
echo "--- Ingest (curl), with the session token from Logon"
curl -sS -i -H 'Content-Type: text/xml; charset=utf-8' -H 'SoapAction: xtk:session#Ingest' --data-binary @- "$SOAP_URL" <<EOF
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:xtk:session">
<soapenv:Header/>
<soapenv:Body>
  <urn:Ingest>
    <urn:sessiontoken>$TOKEN</urn:sessiontoken>
    <urn:domDoc>
      <sampleTableStg id="HTTP0001" testcol1="Test Value 1 (from SOAP over HTTP)" xtkschema="dem:sampleTableStg"/>
    </urn:domDoc>
  </urn:Ingest>
</soapenv:Body>
</soapenv:Envelope>
EOF
echo
psql_on "$LOCAL_PORT" -e -c "SELECT id, testcol1, _operation FROM dem.sampletablestg WHERE id = 'HTTP0001'"

echo "=== on the cloud cluster itself"
psql_on "$CLOUD_PORT" -e -c "SELECT count(*) AS rows_in_cloud FROM dem.sampletable" \
    -c "SELECT * FROM campaign_replication.watermark"

echo "=== demo done; data kept in $DEMO_DIR (clusters stopped)"

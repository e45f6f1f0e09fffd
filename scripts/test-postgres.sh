#!/usr/bin/env bash
# A PostgreSQL server for the store tests: installs Debian's `postgresql` if its server is missing,
# makes sure a cluster runs on 127.0.0.1, (re)creates the role and database, and prints ONE line on
# stdout: the SQLAlchemy URL. Everything else goes to stderr. Safe to run again (it only fixes what is missing).
#
#   export SPINE_TEST_POSTGRES_URL="$(bash scripts/test-postgres.sh)"
#
# Settings (all optional): SPINE_PG_NAME (role, password and database; default spine_test),
# SPINE_PG_PASSWORD, SPINE_PG_CLUSTER (Debian cluster name; default main),
# SPINE_PG_DATA and SPINE_PG_PORT (a plain initdb folder instead of a Debian cluster; default port 5432).
set -euo pipefail

NAME=${SPINE_PG_NAME:-spine_test}
PASSWORD=${SPINE_PG_PASSWORD:-$NAME}
CLUSTER=${SPINE_PG_CLUSTER:-main}
log() { echo "test-postgres: $*" >&2; }
fail() {
    log "$*"
    exit 1
}

if [ "$(id -u)" = 0 ]; then
    SUDO=()
    as_postgres() { (cd / && runuser -u postgres -- "$@"); } # from /: postgres may not read the caller's folder
else
    SUDO=(sudo)
    as_postgres() { (cd / && sudo -u postgres -- "$@"); }
fi

# The server's own binaries: /usr/local/bin/postgres may be a bare link, so look where Debian puts them.
server_bin() { find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n 1 | xargs -r dirname; }

BIN=$(server_bin)
if [ -z "$BIN" ]; then
    log "no PostgreSQL server found: installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >&2
    BIN=$(server_bin)
    [ -n "$BIN" ] || fail "postgresql installed but no server under /usr/lib/postgresql/*/bin"
fi
VERSION=$(basename "$(dirname "$BIN")")

if [ -z "${SPINE_PG_DATA:-}" ] && command -v pg_lsclusters >/dev/null; then
    # Debian's cluster tooling: the package's postinst usually made `main` already; it may not be running.
    field() { pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" -v f="$1" '$1 == v && $2 == c { print $f }'; }
    if [ -z "$(field 2)" ]; then
        log "creating cluster $VERSION/$CLUSTER"
        "${SUDO[@]}" pg_createcluster "$VERSION" "$CLUSTER" >&2
    fi
    PORT=$(field 3)
    if [[ "$(field 4)" != online* ]]; then
        log "starting cluster $VERSION/$CLUSTER on port $PORT"
        "${SUDO[@]}" pg_ctlcluster "$VERSION" "$CLUSTER" start >&2 || {
            tail -n 20 "$(field 7)" >&2 || true
            fail "cluster $VERSION/$CLUSTER did not start"
        }
    fi
    SOCKET=/var/run/postgresql
else
    # No cluster tooling (or SPINE_PG_DATA set): a plain initdb folder owned by postgres.
    DATA=${SPINE_PG_DATA:-/var/tmp/spine-postgres}
    PORT=${SPINE_PG_PORT:-5432}
    SOCKET=$DATA
    id postgres >/dev/null 2>&1 || fail "no 'postgres' user to run the server as"
    if [ ! -s "$DATA/PG_VERSION" ]; then
        log "initdb into $DATA"
        "${SUDO[@]}" install -d -o postgres -m 700 "$DATA"
        as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 >&2
    fi
    if ! as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        log "starting $DATA on port $PORT"
        as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
            -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DATA" start >&2
    fi
fi

for _ in $(seq 60); do # a cluster started by systemd may still be coming up
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.5
done
"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || fail "nothing answers on 127.0.0.1:$PORT"

# The role owns its database, so the tests may create and drop a schema per test. UTF-8 whatever the
# machine's locale (a CI shell without LANG would give SQL_ASCII), with C collation: byte order, as SQLite sorts.
as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET" -p "$PORT" -d postgres -v name="$NAME" -v password="$PASSWORD" >&2 <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name')\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'name', :'password')\gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' LOCALE ''C'' TEMPLATE template0', :'name', :'name')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name')\gexec
SQL

# Prove the URL works over TCP with the password before handing it out.
ENCODING=$(PGPASSWORD=$PASSWORD "$BIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT" -U "$NAME" -d "$NAME" -c "SHOW server_encoding") ||
    fail "could not log in as $NAME on 127.0.0.1:$PORT"
[ "$ENCODING" = UTF8 ] || fail "database $NAME is $ENCODING, not UTF8: drop it and run this again"
echo "postgresql+psycopg://$NAME:$PASSWORD@127.0.0.1:$PORT/$NAME"

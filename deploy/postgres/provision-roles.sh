#!/bin/sh
# Creates or updates the PostgreSQL role serving runs as (deploy/postgres/serving-role.sql):
# INSERT on the prediction log, SELECT on the Feast registry, nothing else. Idempotent.
#
# Connects with libpq's variables as the owner of the tables (compose: the bootstrap user):
#   PGHOST PGPORT PGUSER PGPASSWORD
# and reads (no defaults for secrets; placeholders from .env.example are refused):
#   SERVING_DB_USER (default churnops_serving)  SERVING_DB_PASSWORD
#   PREDICTION_LOG_DB (default churnops)         FEAST_REGISTRY_DB (default feast)
set -eu

SERVING_DB_USER=${SERVING_DB_USER:-churnops_serving}
PREDICTION_LOG_DB=${PREDICTION_LOG_DB:-churnops}
FEAST_REGISTRY_DB=${FEAST_REGISTRY_DB:-feast}
export SERVING_DB_USER PREDICTION_LOG_DB FEAST_REGISTRY_DB

refuse() {
    echo "provision-roles: $1" >&2
    exit 2
}

[ -n "${SERVING_DB_PASSWORD:-}" ] || refuse "SERVING_DB_PASSWORD is not set: set the serving role's password"
case $(printf '%s' "$SERVING_DB_PASSWORD" | tr '[:upper:]' '[:lower:]') in
    change_me | changeme | change-me | placeholder | replace_me | todo | xxx | "<"*">")
        refuse "SERVING_DB_PASSWORD holds a placeholder from .env.example: set a real secret (openssl rand -hex 24)" ;;
esac
[ "$SERVING_DB_USER" != "${PGUSER:-}" ] || refuse "SERVING_DB_USER must not be the owner (PGUSER=$PGUSER)"
[ "$PREDICTION_LOG_DB" != "$FEAST_REGISTRY_DB" ] \
    || refuse "FEAST_REGISTRY_DB must be its own database: serving may read all of it"

# On a fresh volume the image runs its init scripts (10-databases.sql) on a socket-only server
# that already passes the healthcheck: wait until the real server answers over the network.
tries=0
until pg_isready -q -d "$PREDICTION_LOG_DB"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "provision-roles: PostgreSQL at ${PGHOST:-localhost} did not answer within 60 s" >&2
        exit 1
    fi
    sleep 1
done

exec psql -X -q -v ON_ERROR_STOP=1 -d "$PREDICTION_LOG_DB" -f "$(dirname "$0")/serving-role.sql"

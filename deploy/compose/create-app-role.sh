#!/usr/bin/env bash
# The application's role, made once when the postgres image initializes an empty data directory
# (it runs what /docker-entrypoint-initdb.d holds; docker-compose.yml mounts this file there).
#
# POSTGRES_USER stays the superuser, for administration. The application logs in as postgres_queue:
# not a superuser, unable to create roles or databases, and the owner of the database
# postgres_queue, which lets it create schemas and tables there (the migrations do) and nothing
# elsewhere. Only its owner and superusers may connect to that database.
#
# The password comes in as a psql variable and is quoted by psql (:'password'), never spliced into
# the SQL text.
set -eo pipefail

if [ -z "${POSTGRES_QUEUE_PASSWORD:-}" ]; then
	echo >&2 'POSTGRES_QUEUE_PASSWORD is required: the password of the application role postgres_queue'
	exit 1
fi

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
	--set password="$POSTGRES_QUEUE_PASSWORD" <<'EOSQL'
create role postgres_queue login password :'password'
  nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
create database postgres_queue owner postgres_queue;
revoke all on database postgres_queue from public;
EOSQL

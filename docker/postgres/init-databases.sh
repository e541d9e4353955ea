#!/usr/bin/env bash
# Runs once, on the first start of the postgres service (an empty data volume), from
# /docker-entrypoint-initdb.d/ of the official image: one server, one database per consumer.
# The image has already created $POSTGRES_DB (dagster); this adds the others. Owner of all three:
# $POSTGRES_USER.
set -euo pipefail
for db in dagster mlflow optuna; do
    exists="$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'")"
    if [ "$exists" != "1" ]; then
        echo "init-databases: creating database $db"
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
            -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
    fi
done

"""optuna-dashboard's start in the compose stack: Optuna's tables first, then the dashboard.

On a fresh stack no tuning run has created the schema yet, and optuna-dashboard, which only
reads a storage, stops with `relation "version_info" does not exist`. Opening the storage with
the Optuna version the studies are written in creates the schema when it is missing and changes
nothing when it is there. The URL, with its password, comes from $OPTUNA_STORAGE and is never
printed.
"""

import os

import optuna

url = os.environ["OPTUNA_STORAGE"]
# A journal on Redis (docker-compose.redis.yml) has no schema to create; only a database does.
if not url.startswith(("redis://", "rediss://")):
    optuna.storages.RDBStorage(url)
os.execvp("optuna-dashboard", ["optuna-dashboard", "--host", "0.0.0.0", "--port", "8080", url])

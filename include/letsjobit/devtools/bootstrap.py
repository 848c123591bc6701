"""Prepare a migrated Airflow metadata DB for the pipeline: admin user, API connection, API pool.

Run after ``airflow db migrate`` by the compose file's ``airflow-init`` service and by the distributed
run, with the deployment's Airflow configuration in the environment. Idempotent: re-running updates
the connection and the pool in place and keeps other users' passwords.

- Admin user of the simple auth manager: ``[core] simple_auth_manager_users`` names the users; this
  writes the password of ``--admin-username`` from ``_AIRFLOW_WWW_USER_PASSWORD`` into the
  passwords file the API server reads (otherwise it would invent one and print it in its log).
- Connection ``letsjobit_default`` (type ``letsjobit``) from ``LETSJOBIT_API_URL``,
  ``LETSJOBIT_API_KEY`` and ``LETSJOBIT_CONN_EXTRA`` (``config.api_connection``, as every entry point).
- Pool ``letsjobit_api``: the slots bound how many extraction tasks call the API at once, across all
  workers (see the README, "Running distributed").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from letsjobit import config, files

log = logging.getLogger(__name__)

ADMIN_PASSWORD_VARIABLE = "_AIRFLOW_WWW_USER_PASSWORD"  # noqa: S105 - the variable's name


def write_admin_password(username: str, password: str) -> Path:
    """Set one user's password in the simple auth manager's passwords file, keeping the others."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    path = Path(SimpleAuthManager.get_generated_password_file())
    path.parent.mkdir(parents=True, exist_ok=True)
    passwords: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        passwords = json.loads(path.read_text())
    passwords[username] = password
    with files.atomic_path(path) as temporary:
        temporary.touch(mode=0o600)  # readable by its owner only, before a secret is in it
        temporary.write_text(json.dumps(passwords) + "\n")
    return path


def upsert_api_connection(connection: dict) -> None:
    """Create or update the ``letsjobit_default`` connection (``config.api_connection()``'s form); the
    key is stored encrypted (Fernet)."""
    # The ORM model: airflow.sdk.Connection is the read-only view tasks get, it cannot be stored.
    from airflow.models import Connection  # noqa: AIR311
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(Connection).where(Connection.conn_id == config.CONN_ID)  # noqa: AIR311
        stored = session.scalar(query)
        if stored is None:
            stored = Connection(conn_id=config.CONN_ID)  # noqa: AIR311
            session.add(stored)
        stored.conn_type = connection["conn_type"]
        stored.description = "LetsJobIt API v2 (created by letsjobit.devtools.bootstrap)"
        stored.host = connection["host"]
        stored.password = connection["password"]
        stored.extra = json.dumps(connection["extra"]) if connection["extra"] else None
    log.info(
        "connection %s -> %s (extras: %s)", config.CONN_ID, connection["host"], sorted(connection["extra"])
    )


def upsert_api_pool(slots: int) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        name=config.API_POOL,
        slots=slots,
        description="Extraction tasks calling the LetsJobIt API; bounds concurrent use of one key's budget",
        include_deferred=False,
    )
    log.info("pool %s has %d slots", config.API_POOL, slots)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-username", default="admin")
    parser.add_argument("--pool-slots", type=int, default=config.API_POOL_SLOTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    problems = []
    if not password:
        problems.append(f"{ADMIN_PASSWORD_VARIABLE} is not set (the admin user's password)")
    if args.pool_slots < 1:
        problems.append(f"--pool-slots must be at least 1, got {args.pool_slots}")
    connection = None
    try:
        connection = config.api_connection()
    except config.ConfigError as error:
        problems.append(f"{error} (the compose file defaults LETSJOBIT_API_URL to the simulator)")
    if problems:
        for problem in problems:
            log.error("%s", problem)
        return 2
    path = write_admin_password(args.admin_username, password)
    log.info("password of user %s written to %s", args.admin_username, path)
    upsert_api_connection(connection)
    upsert_api_pool(args.pool_slots)
    return 0


if __name__ == "__main__":
    sys.exit(main())

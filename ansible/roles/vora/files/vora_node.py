"""Node-side helper the Ansible roles run with the installed virtualenv's Python.

It asks the installed Vora package instead of repeating its defaults in YAML, so the
roles and the services can never disagree on a port or a key. Every subcommand prints
one JSON object; state-changing ones report ``"changed"`` for Ansible's changed_when.
Settings come from VORA_ENV_FILE, exactly as the service reads them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from vora import storage
from vora.config import Settings, load_settings


def address(settings: Settings, host_field: str, port_field: str) -> dict[str, object]:
    return {"host": getattr(settings, host_field), "port": getattr(settings, port_field)}


def varnish(settings: Settings) -> dict[str, object]:
    from vora.devstack import varnish_context  # the same context `vora dev up` renders

    return {
        "context": varnish_context(settings),
        "listen": f"{settings.varnish_host}:{settings.varnish_port}",
        "admin_port": settings.varnish_admin_port,
        "storage": settings.varnish_storage,
    }


def migrate_postgres(settings: Settings) -> dict[str, object]:
    from vora.migrate import migrate_postgres as apply

    applied = apply(settings)
    return {"changed": bool(applied), "applied": applied}


def migrate_clickhouse(settings: Settings) -> dict[str, object]:
    from vora.migrate import migrate_clickhouse as apply

    applied = apply(settings)
    return {"changed": bool(applied), "applied": applied}


def create_buckets(settings: Settings) -> dict[str, object]:
    client = storage.s3_client(settings)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = [b for b in (settings.bucket_raw, settings.bucket_processed) if b not in existing]
    for bucket in created:
        client.create_bucket(Bucket=bucket)
    return {"changed": bool(created), "created": created}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    where = commands.add_parser("address", help="host and port a service listens on")
    where.add_argument("host_field")
    where.add_argument("port_field")
    for name in ("varnish", "migrate-postgres", "migrate-clickhouse", "create-buckets"):
        commands.add_parser(name)
    args = parser.parse_args()
    settings = load_settings()
    actions: dict[str, Callable[[Settings], dict[str, object]]] = {
        "varnish": varnish,
        "migrate-postgres": migrate_postgres,
        "migrate-clickhouse": migrate_clickhouse,
        "create-buckets": create_buckets,
    }
    if args.command == "address":
        result = address(settings, args.host_field, args.port_field)
    else:
        result = actions[args.command](settings)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

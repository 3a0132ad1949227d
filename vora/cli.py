"""The ``vora`` command: ``vora dev ...`` runs the local stack; ``vora upload|status|play|ls|rm``
follow a video through it (vora/cli_videos.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from vora import cli_farm, cli_videos, devstack, settings_doc
from vora.client import ClientError, mint_user_token
from vora.config import Settings, SettingsError, load_settings

console = Console(stderr=True)


def _dev_up(settings: Settings, args: argparse.Namespace) -> int:
    with console.status("bringing the stack up") as spinner:
        devstack.up(settings, args.components or None, timeout=args.timeout,
                    progress=lambda text: spinner.update(text))
    console.print("[green]stack is up[/green]")
    return _dev_status(settings, args)


def _dev_down(settings: Settings, args: argparse.Namespace) -> int:
    devstack.down(settings)
    console.print("stack stopped (data kept; `vora dev reset` deletes it)")
    return 0


def _dev_reset(settings: Settings, args: argparse.Namespace) -> int:
    devstack.reset(settings)
    console.print(f"stack stopped and {settings.home} deleted")
    return 0


def _dev_stop(settings: Settings, args: argparse.Namespace) -> int:
    devstack.stop(settings, args.components)
    return 0


def _dev_start(settings: Settings, args: argparse.Namespace) -> int:
    devstack.start(settings, args.components)
    devstack.wait_healthy(settings, args.components, timeout=args.timeout)
    return 0


def _dev_status(settings: Settings, args: argparse.Namespace) -> int:
    rows = devstack.status(settings)
    table = Table(title=f"Vora local stack ({settings.home})")
    for column in ("component", "process", "health", "address"):
        table.add_column(column)
    for row in rows:
        colour = "green" if row.healthy else "red"
        table.add_row(row.name, row.state, f"[{colour}]{row.detail}[/{colour}]", row.address)
    Console().print(table)
    return 0 if all(row.healthy for row in rows) else 1


def _config(settings: Settings, args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_doc.markdown(), end="")
        return 0
    table = Table(title="Vora settings (effective; secrets masked)")
    for column in ("variable", "type", "value"):
        table.add_column(column)
    for row in settings_doc.rows(settings, mask=True):
        table.add_row(*row)
    Console().print(table)
    return 0


def _dev_token(settings: Settings, args: argparse.Namespace) -> int:
    print(mint_user_token(settings, args.user, args.ttl))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vora", description="Vora video transcoding farm")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run the local stack").add_subparsers(
        dest="dev_command", required=True)
    handlers: dict[str, tuple[Callable[[Settings, argparse.Namespace], int], str]] = {
        "up": (_dev_up, "start the stack (or the named components) and wait until healthy"),
        "down": (_dev_down, "stop everything, keep the data"),
        "status": (_dev_status, "show each component's process state and health"),
        "reset": (_dev_reset, "stop everything and delete the stack's data"),
        "stop": (_dev_stop, "stop the named components"),
        "start": (_dev_start, "start the named components"),
    }
    for name, (handler, text) in handlers.items():
        sub = dev.add_parser(name, help=text)
        if name in ("up", "stop", "start"):
            sub.add_argument("components", nargs="*" if name == "up" else "+", metavar="NAME",
                             help=f"any of {', '.join(devstack.ALL)}")
        sub.add_argument("--timeout", type=float, default=180.0)
        sub.set_defaults(handler=handler)
    token = dev.add_parser("token", help="mint a development JWT for a user (HS256)")
    token.add_argument("user")
    token.add_argument("--ttl", type=int, default=12 * 3600)
    token.set_defaults(handler=_dev_token)
    config = commands.add_parser("config", help="show the effective settings")
    config.add_argument("--markdown", action="store_true",
                        help="print docs/configuration.md (the defaults) instead")
    config.set_defaults(handler=_config)
    cli_videos.add_arguments(commands)
    cli_farm.add_arguments(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    try:
        settings = load_settings()
        args = build_parser().parse_args(argv)
        code = args.handler(settings, args)
    except (SettingsError, devstack.StackError, ClientError) as exc:
        console.print(f"[red]vora: {exc}[/red]")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()

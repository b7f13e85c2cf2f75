"""The service's command line: run it, and manage reviewer accounts.

    workflow-service serve [--host 127.0.0.1] [--port 8010]
    workflow-service user add NAME --role support_triage:reviewer [--role it_service_desk:lead] [--password-stdin]
    workflow-service user roles NAME --role support_triage:lead ...     (replaces the user's roles)
    workflow-service user password NAME [--password-stdin]
    workflow-service user disable NAME | enable NAME
    workflow-service user list

Roles are FAMILY:ROLE with ROLE reviewer, lead or admin (FAMILY ``*``: every family). Passwords are
read from a prompt (never from the command line, which other users can see in the process list), or
from standard input with ``--password-stdin``. The warehouse is ``--warehouse-url``, else
``WAREHOUSE_URL``, else the data dir's SQLite file, as for ``workflow-review``.
"""

import argparse
import getpass
import sys

from resources.configuration import ConfigError
from resources.warehouse import Warehouse
from resources.warehouse_url import WarehouseError

from ..loading import load_families
from . import accounts, ingest_cli
from .settings import load_settings

DEFAULT_PORT = 8010


def _settings(args: argparse.Namespace):
    return load_settings(warehouse_url=args.warehouse_url or None, defs_folder=args.defs or None)


def _warehouse(args: argparse.Namespace) -> Warehouse:
    return Warehouse(url=_settings(args).warehouse_url)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise accounts.AccountError("the two passwords differ")
    return first


def _roles(args: argparse.Namespace) -> dict[str, str]:
    families = [f.name for f in load_families(_settings(args).defs_folder)]
    return accounts.parse_roles(args.role or [], families)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    settings = _settings(args)
    app = create_app(settings)
    print(f"review service: http://{args.host}:{args.port}/  (warehouse {settings.display_warehouse})", flush=True)
    if not accounts.list_users(app.state.warehouse):
        print("no reviewer accounts yet: create one with `workflow-service user add NAME --role FAMILY:reviewer` "
              "(or --role '*:admin')", flush=True)
    # no proxy headers: behind no proxy, a client could set X-Forwarded-For and dodge the per-address limit
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=False, server_header=False,
                log_level=args.log_level)
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    roles = _roles(args)
    accounts.add_user(_warehouse(args), args.name, _password(args), roles)
    print(f"added {args.name} with roles {_show(roles)}")
    return 0


def cmd_user_roles(args: argparse.Namespace) -> int:
    roles = _roles(args)
    accounts.set_roles(_warehouse(args), args.name, roles)
    print(f"{args.name} now has roles {_show(roles)}; their open sessions have ended")
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    accounts.set_password(_warehouse(args), args.name, _password(args))
    print(f"changed the password of {args.name}; their open sessions have ended")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    accounts.set_disabled(_warehouse(args), args.name, True)
    print(f"disabled {args.name}; their open sessions have ended")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    accounts.set_disabled(_warehouse(args), args.name, False)
    print(f"enabled {args.name}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    users = accounts.list_users(_warehouse(args))
    if not users:
        print("no users yet; add one with `workflow-service user add NAME --role FAMILY:ROLE`")
    for u in users:
        print(f"{u.name}\t{'disabled' if u.disabled else 'active'}\t{_show(u.roles)}")
    return 0


def _show(roles: dict[str, str]) -> str:
    return ", ".join(f"{f}:{r}" for f, r in sorted(roles.items())) or "(none)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workflow-service", description="The review and ingest service.")
    parser.add_argument("--warehouse-url", default="", help="SQLAlchemy URL (default: WAREHOUSE_URL or the data dir's SQLite)")
    parser.add_argument("--defs", default="", help="defs folder holding the families (default: DEFS_DIR or the project's)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service (prints its URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="reviewer accounts").add_subparsers(dest="user_command", required=True)
    for name, func, helptext in (("add", cmd_user_add, "create an account"),
                                 ("roles", cmd_user_roles, "replace an account's roles"),
                                 ("password", cmd_user_password, "set a new password"),
                                 ("disable", cmd_user_disable, "stop an account from signing in"),
                                 ("enable", cmd_user_enable, "let a disabled account sign in again")):
        p = user.add_parser(name, help=helptext)
        p.add_argument("name")
        if name in ("add", "roles"):
            p.add_argument("--role", action="append", metavar="FAMILY:ROLE", required=name == "roles",
                           help="reviewer, lead or admin of a family (* for all); repeat for several")
        if name in ("add", "password"):
            p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        p.set_defaults(func=func)
    user.add_parser("list", help="accounts and their roles").set_defaults(func=cmd_user_list)
    _register_plugins(sub)
    return parser


def _register_plugins(sub) -> None:
    """Sub-commands other service modules add (``register(subparsers)``), e.g. the ingest tokens."""
    ingest_cli.register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, WarehouseError) as exc:  # a spec, a setting, or a warehouse that cannot be reached
        print("\n".join(f"error: {line}" for line in str(exc).splitlines()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

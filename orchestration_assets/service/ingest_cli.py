"""``workflow-service token ...``: the API tokens upstream systems post records with.

    workflow-service token create --source helpdesk --family support_triage [--family ...]
    workflow-service token list
    workflow-service token revoke TOKEN_ID

``create`` prints the token once, on standard output alone (so a script can capture it); it is
stored only as a digest and cannot be shown again: a lost token is revoked and replaced.
"""

import argparse
import sys

from ..loading import load_families
from .settings import load_settings
from .tokens import TokenError, create_token, list_tokens, revoke_token


def _settings(args: argparse.Namespace):
    return load_settings(warehouse_url=getattr(args, "warehouse_url", "") or None,
                         defs_folder=getattr(args, "defs", "") or None)


def cmd_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    known = [f.name for f in load_families(settings.defs_folder)]
    unknown = [f for f in args.family if f not in known]
    if unknown:
        print(f"error: --family {', '.join(unknown)}: no such family in {settings.defs_folder}; "
              f"families: {', '.join(known) or '(none)'}", file=sys.stderr)
        return 2
    try:
        token, row = create_token(settings.warehouse_url, args.source, args.family)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(f"created token {row.token_id} for source {row.source!r}, families {', '.join(row.families)}; "
          "it is shown only this once: store it in the source's secret store", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    tokens = list_tokens(_settings(args).warehouse_url)
    if not tokens:
        print("no API tokens yet; create one with `workflow-service token create --source NAME --family FAMILY`")
    for t in tokens:
        state = f"revoked {t.revoked_at}" if t.revoked_at else "active"
        print(f"{t.token_id}\t{t.source}\t{','.join(t.families)}\tcreated {t.created_at}\t"
              f"last used {t.last_used_at or 'never'}\t{state}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    try:
        row = revoke_token(_settings(args).warehouse_url, args.token_id)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"token {row.token_id} of source {row.source!r} revoked at {row.revoked_at}; requests with it now get 401")
    return 0


def register(subparsers) -> None:
    """Add ``token create|list|revoke`` to the service's command line."""
    token = subparsers.add_parser("token", help="API tokens of the ingest API").add_subparsers(
        dest="token_command", required=True)
    create = token.add_parser("create", help="create a token for a source (printed once)")
    create.add_argument("--source", required=True, help="the upstream system, e.g. helpdesk (names its batch files)")
    create.add_argument("--family", action="append", required=True, metavar="FAMILY",
                        help="a family the token may post records to; repeat for several")
    create.set_defaults(func=cmd_create)
    token.add_parser("list", help="tokens with source, families, last use (never the token)").set_defaults(func=cmd_list)
    revoke = token.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", help="the id `token list` shows")
    revoke.set_defaults(func=cmd_revoke)

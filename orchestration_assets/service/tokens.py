"""Per-source API tokens of the ingest API: created once, stored as a digest, scoped to families, revocable.

A token reads ``aop_<id>_<secret>``: the id (16 hex characters) names the row and is safe to show in
``token list`` and logs; the secret (``secrets.token_urlsafe(32)``, 256 random bits) is shown once, at
creation, and never stored. The table keeps the SHA-256 digest of the whole token, compared in
constant time. A slow password hash (argon2, as for reviewers' passwords) exists to make guessing a
human-chosen password expensive; a 256-bit random secret cannot be guessed, so a fast digest is the
standard (GitHub and PyPI tokens work the same way) and keeps every API request cheap.
"""

import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from resources.warehouse import engine_for

TOKENS_TABLE = "service_api_tokens"
PREFIX = "aop"
SOURCE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
LAST_USED_PRECISION = timedelta(seconds=60)
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")

metadata = sa.MetaData()
tokens_table = sa.Table(
    TOKENS_TABLE,
    metadata,
    sa.Column("token_id", sa.String(16), primary_key=True),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("families", sa.Text, nullable=False),  # a JSON list of family names
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 hex of the whole token
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("last_used_at", sa.String(40), nullable=True),
    sa.Column("revoked_at", sa.String(40), nullable=True),
)


class TokenError(ValueError):
    """A token request that cannot be honoured (bad source name, unknown token id ...); the message says why."""


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    source: str
    families: tuple[str, ...]
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_ready: set[tuple[str, int]] = set()
_ready_lock = threading.Lock()


def ensure_schema(engine: sa.Engine, tables: sa.MetaData) -> None:
    """Create ``tables`` once per process and database; two processes creating them at once both succeed."""
    key = (str(engine.url), id(tables))
    with _ready_lock:
        if key in _ready:
            return
        try:
            tables.create_all(engine, checkfirst=True)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            # PostgreSQL: another process created a table between the check and the CREATE
            tables.create_all(engine, checkfirst=True)
        _ready.add(key)


def _ensure(engine: sa.Engine) -> None:
    ensure_schema(engine, metadata)


def _row(row) -> ApiToken:
    return ApiToken(row.token_id, row.source, tuple(json.loads(row.families)), row.created_at, row.last_used_at,
                    row.revoked_at)


def create_token(warehouse_url: str, source: str, families: list[str]) -> tuple[str, ApiToken]:
    """A new token for ``source`` allowed to post to ``families``; the plain token is returned only here."""
    if not SOURCE_PATTERN.fullmatch(source or ""):
        raise TokenError(f"source {source!r}: use 1-40 lower-case letters, digits, '-' or '_', starting with a "
                         "letter or digit (it names the batch files the source's requests become)")
    if not families:
        raise TokenError("a token needs at least one --family it may post records to")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    token = f"{PREFIX}_{token_id}_{secret}"
    engine = engine_for(warehouse_url)
    _ensure(engine)
    row = {"token_id": token_id, "source": source, "families": json.dumps(sorted(set(families))),
           "digest": _digest(token), "created_at": now_iso(), "last_used_at": None, "revoked_at": None}
    with engine.begin() as conn:
        conn.execute(sa.insert(tokens_table), row)
    return token, ApiToken(token_id, source, tuple(json.loads(row["families"])), row["created_at"], None, None)


def list_tokens(warehouse_url: str) -> list[ApiToken]:
    engine = engine_for(warehouse_url)
    _ensure(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tokens_table).order_by(tokens_table.c.created_at, tokens_table.c.token_id)).all()
    return [_row(r) for r in rows]


def revoke_token(warehouse_url: str, token_id: str) -> ApiToken:
    """Revoke a token by its id (``token list``), or by the whole token; revoking twice keeps the first time."""
    if (m := _TOKEN.fullmatch(token_id.strip())) is not None:
        token_id = m.group(1)
    engine = engine_for(warehouse_url)
    _ensure(engine)
    with engine.begin() as conn:
        conn.execute(sa.update(tokens_table)
                     .where(tokens_table.c.token_id == token_id, tokens_table.c.revoked_at.is_(None))
                     .values(revoked_at=now_iso()))
        row = conn.execute(sa.select(tokens_table).where(tokens_table.c.token_id == token_id)).first()
    if row is None:
        raise TokenError(f"no API token with id {token_id!r}; `workflow-service token list` shows the ids")
    return _row(row)


def authenticate(warehouse_url: str, presented: str) -> ApiToken | None:
    """The live token ``presented`` is, its last-used time updated; None for a malformed, unknown or revoked one."""
    m = _TOKEN.fullmatch(presented or "")
    if m is None:
        return None
    engine = engine_for(warehouse_url)
    _ensure(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(tokens_table).where(tokens_table.c.token_id == m.group(1))).first()
    # ids are not secret (``token list`` shows them); the digest comparison is constant-time, so the time an
    # answer takes does not tell a guesser how much of a digest matched
    if row is None or not hmac.compare_digest(row.digest, _digest(presented)) or row.revoked_at is not None:
        return None
    now = datetime.now(timezone.utc)
    # a write per request would queue every request behind the warehouse's write lock: minute precision will do
    if row.last_used_at is None or row.last_used_at < (now - LAST_USED_PRECISION).isoformat(timespec="seconds"):
        with engine.begin() as conn:
            conn.execute(sa.update(tokens_table).where(tokens_table.c.token_id == row.token_id)
                         .values(last_used_at=now.isoformat(timespec="seconds")))
    return _row(row)

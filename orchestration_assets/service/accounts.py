"""Reviewer accounts: users with argon2-hashed passwords and per-family roles, in the warehouse.

Roles rank ``reviewer`` < ``lead`` < ``admin``: a reviewer decides a family's ``human_review`` items, a
lead also its escalations, an admin also sees the accounts page. A role's family ``*`` means every
family. Accounts are created and changed from the command line only (``workflow-service user ...``).

Every sign-out and every password or role change bumps the user's ``session_epoch``; a session
cookie carries the epoch it was issued under, so it stops working at once, not when it expires.
"""

import functools
import re
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from resources.warehouse import Warehouse

ROLES = ("reviewer", "lead", "admin")
ANY_FAMILY = "*"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD = 10

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name costs as long as a wrong password."""
    return _hasher.hash("not-a-password-of-anyone")

_meta = sa.MetaData()
users_table = sa.Table(
    "service_users",
    _meta,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("session_epoch", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.String(40), nullable=False),
)
roles_table = sa.Table(
    "service_roles",
    _meta,
    sa.Column("name", sa.String(100), sa.ForeignKey("service_users.name"), primary_key=True),
    sa.Column("family", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
)


class AccountError(ValueError):
    """An account command that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    disabled: bool
    session_epoch: int
    roles: dict[str, str] = field(default_factory=dict)  # family (or "*") -> role

    def role_in(self, family: str) -> str | None:
        """The user's highest role in ``family`` (a ``*`` role counts for every family)."""
        found = [r for f, r in self.roles.items() if f in (family, ANY_FAMILY)]
        return max(found, key=ROLES.index) if found else None

    def can(self, family: str, role: str) -> bool:
        have = self.role_in(family)
        return have is not None and ROLES.index(have) >= ROLES.index(role)

    def is_admin(self) -> bool:
        return "admin" in self.roles.values()


def ensure_tables(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        _meta.create_all(conn, checkfirst=True)


def parse_roles(specs: list[str], families: list[str]) -> dict[str, str]:
    """``["support_triage:lead", "*:admin"]`` -> {family: role}; names the bad entry and the choices."""
    out: dict[str, str] = {}
    for spec in specs:
        family, sep, role = spec.partition(":")
        if not sep or role not in ROLES:
            raise AccountError(f"--role {spec!r}: expected FAMILY:ROLE with ROLE one of {', '.join(ROLES)}")
        if family != ANY_FAMILY and family not in families:
            raise AccountError(f"--role {spec!r}: no family named {family!r}; families: {', '.join(families)} "
                               f"(or {ANY_FAMILY} for all)")
        out[family] = role
    return out


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")


def add_user(warehouse: Warehouse, name: str, password: str, roles: dict[str, str]) -> None:
    if not NAME.match(name):
        raise AccountError(f"user name {name!r}: use letters, digits and . _ @ - (at most 100 characters)")
    check_password(password)
    ensure_tables(warehouse)
    try:
        with warehouse.engine.begin() as conn:
            conn.execute(sa.insert(users_table).values(
                name=name, password_hash=_hasher.hash(password), disabled=False, session_epoch=0,
                created_at=pd.Timestamp.now(tz="UTC").isoformat()))
            _write_roles(conn, name, roles)
    except sa.exc.IntegrityError:
        raise AccountError(f"user {name!r} already exists; change it with `user roles` or `user password`") from None


def set_roles(warehouse: Warehouse, name: str, roles: dict[str, str]) -> None:
    ensure_tables(warehouse)
    with warehouse.engine.begin() as conn:
        _require(conn, name)
        conn.execute(sa.delete(roles_table).where(roles_table.c.name == name))
        _write_roles(conn, name, roles)
        _bump_epoch(conn, name)


def set_password(warehouse: Warehouse, name: str, password: str) -> None:
    check_password(password)
    ensure_tables(warehouse)
    with warehouse.engine.begin() as conn:
        _require(conn, name)
        conn.execute(sa.update(users_table).where(users_table.c.name == name)
                     .values(password_hash=_hasher.hash(password)))
        _bump_epoch(conn, name)


def set_disabled(warehouse: Warehouse, name: str, disabled: bool = True) -> None:
    ensure_tables(warehouse)
    with warehouse.engine.begin() as conn:
        _require(conn, name)
        conn.execute(sa.update(users_table).where(users_table.c.name == name).values(disabled=disabled))
        _bump_epoch(conn, name)


def end_sessions(warehouse: Warehouse, name: str) -> None:
    """Every session cookie issued to ``name`` so far stops working (sign-out)."""
    ensure_tables(warehouse)
    with warehouse.engine.begin() as conn:
        _bump_epoch(conn, name)


def get_user(warehouse: Warehouse, name: str) -> User | None:
    ensure_tables(warehouse)
    with warehouse.engine.connect() as conn:
        row = conn.execute(sa.select(users_table.c.name, users_table.c.disabled, users_table.c.session_epoch)
                           .where(users_table.c.name == name)).first()
        if row is None:
            return None
        roles = conn.execute(sa.select(roles_table.c.family, roles_table.c.role)
                             .where(roles_table.c.name == name)).all()
    return User(row.name, bool(row.disabled), int(row.session_epoch), {f: r for f, r in roles})


def list_users(warehouse: Warehouse) -> list[User]:
    ensure_tables(warehouse)
    with warehouse.engine.connect() as conn:
        users = conn.execute(sa.select(users_table.c.name, users_table.c.disabled, users_table.c.session_epoch)
                             .order_by(users_table.c.name)).all()
        roles = conn.execute(sa.select(roles_table)).all()
    by_user: dict[str, dict[str, str]] = {}
    for r in roles:
        by_user.setdefault(r.name, {})[r.family] = r.role
    return [User(u.name, bool(u.disabled), int(u.session_epoch), by_user.get(u.name, {})) for u in users]


def authenticate(warehouse: Warehouse, name: str, password: str) -> User | None:
    """The user when the name and password match an enabled account, else None (no reason given)."""
    ensure_tables(warehouse)
    with warehouse.engine.connect() as conn:
        stored = conn.execute(sa.select(users_table.c.password_hash, users_table.c.disabled)
                              .where(users_table.c.name == name)).first()
    try:
        _hasher.verify(stored.password_hash if stored else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None or stored.disabled:
        return None
    if _hasher.check_needs_rehash(stored.password_hash):  # the library's parameters went up since
        with warehouse.engine.begin() as conn:
            conn.execute(sa.update(users_table).where(users_table.c.name == name)
                         .values(password_hash=_hasher.hash(password)))
    return get_user(warehouse, name)


def _require(conn: sa.Connection, name: str) -> None:
    if conn.execute(sa.select(users_table.c.name).where(users_table.c.name == name)).first() is None:
        raise AccountError(f"no user named {name!r}; see `workflow-service user list`")


def _write_roles(conn: sa.Connection, name: str, roles: dict[str, str]) -> None:
    if roles:
        conn.execute(sa.insert(roles_table), [{"name": name, "family": f, "role": r} for f, r in roles.items()])


def _bump_epoch(conn: sa.Connection, name: str) -> None:
    conn.execute(sa.update(users_table).where(users_table.c.name == name)
                 .values(session_epoch=users_table.c.session_epoch + 1))

"""Whether a warehouse URL can work, said before a run starts, and one clear error when it stops working.

:func:`url_problem` checks a SQLAlchemy URL without connecting (definitions call it while loading,
so ``dg check defs`` rejects a bad ``WAREHOUSE_URL``): it parses, its dialect exists, its driver is
installed, and a SQLite file can be created where it points. :func:`report_connect_failures` makes
an engine raise :class:`WarehouseError` when it cannot connect, naming ``WAREHOUSE_URL`` with the
password hidden, instead of the driver's own error.
"""

import re
from pathlib import Path

import sqlalchemy as sa

from resources.configuration import folder_problem

WAREHOUSE_ENV = "WAREHOUSE_URL"
# a URL SQLAlchemy cannot parse is masked by hand: it may still hold a password
_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
# the drivers the project's extras install; any other driver is named so the user can install it
_EXTRAS = {"psycopg": "postgres"}


class WarehouseError(sa.exc.SQLAlchemyError):
    """The warehouse cannot be used: the message names the URL (password hidden) and ``WAREHOUSE_URL``."""


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, even when it does not parse."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return _PASSWORD.sub(r"\1***@", url)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a warehouse (checked without connecting), or None."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return ("not a valid SQLAlchemy URL; expected e.g. postgresql+psycopg://user:password@host/database "
                "or sqlite:///path/warehouse.db")
    try:
        dialect = parsed.get_dialect()
    except sa.exc.NoSuchModuleError:
        return f"unknown database {parsed.drivername!r}; expected e.g. postgresql+psycopg or sqlite"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return _missing_driver(parsed, exc.name or parsed.get_driver_name())
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_problem(parsed.database)
    return None


def _missing_driver(parsed: sa.URL, module: str) -> str:
    extra = _EXTRAS.get(module.split(".")[0])
    if extra:
        return (f"its database driver is not installed ({module!r}); install the project's {extra!r} extra: "
                f"pip install -e '.[{extra}]'")
    if parsed.get_backend_name() == "postgresql":
        return (f"its database driver is not installed ({module!r}); use postgresql+psycopg://... and install "
                "the project's 'postgres' extra: pip install -e '.[postgres]'")
    return f"its database driver is not installed ({module!r}); install the package that provides it"


def _sqlite_problem(database: str | None) -> str | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    if path.is_dir():
        return f"{database} is a folder, not a database file"
    return folder_problem(path.parent)


def check_url(url: str) -> None:
    """Raise :class:`WarehouseError` naming ``WAREHOUSE_URL`` when ``url`` cannot work."""
    problem = url_problem(url)
    if problem:
        raise WarehouseError(f"cannot use the warehouse {mask_url(url)} ({WAREHOUSE_ENV}): {problem}")


def report_connect_failures(engine: sa.Engine) -> None:
    """An engine that cannot connect raises one :class:`WarehouseError`, not the driver's error."""

    @sa.event.listens_for(engine, "handle_error")
    def _connect_failed(ctx) -> None:
        # a failed pre-ping is retried by the pool; statement errors (constraints, locks) stay as they are
        if ctx.is_pre_ping or not (ctx.connection is None or ctx.is_disconnect):
            return
        lines = str(ctx.original_exception).strip().splitlines()
        reason = lines[0] if lines else type(ctx.original_exception).__name__
        if engine.url.password:
            reason = reason.replace(str(engine.url.password), "***")
        raise WarehouseError(f"cannot connect to the warehouse {engine.url.render_as_string(hide_password=True)} "
                             f"({WAREHOUSE_ENV}): {reason}")

"""What every configuration check shares: the error type, and the checks of a folder and of a web URL.

A configuration that cannot be used (a family spec, the model catalog, a setting) raises
:class:`ConfigError`: one ``source: key.path: reason`` line per problem, where ``source`` is the
file (``.../defs.yaml``, ``models.yaml``) or, for a setting read from the environment,
``environment`` with the variable's name as the key::

    environment: INBOX_DIR: /srv/inbox is a file, not a folder

Definitions raise it while loading, so ``dg check defs`` and ``dagster definitions validate`` fail
before any run does work or spends; the command line tools print it without a traceback.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

ENVIRONMENT = "environment"


class ConfigError(ValueError):
    """A configuration that cannot be loaded; one ``source: key.path: reason`` line per problem."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {loc}: {msg}" if loc else f"{source}: {msg}" for loc, msg in problems]
        super().__init__("\n".join(lines))

    def __reduce__(self):
        # errors cross process boundaries pickled; the default would rebuild from the message alone
        return (type(self), (self.source, self.problems))


def folder_problem(path: str | Path, what: str = "folder") -> str | None:
    """Why ``path`` cannot be used as (or created as) a writable folder, or None; nothing is created."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a {what}"
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create the {what} {path}: {ancestor} is a file"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot write the {what} {path}: {ancestor} is not writable"
    return None


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL with a host, or None. The URL is not repeated: it may hold a token."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        ok = False
    return None if ok else "not an http(s) URL (expected e.g. https://host/path)"

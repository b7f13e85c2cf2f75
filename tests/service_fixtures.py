"""Helpers of the review service's tests: a seeded warehouse with accounts, and signing in through the pages.

:func:`seeded_service` writes one batch per family (records routed to auto_send, human_review and
escalate, as :func:`tests.governance_fixtures.seed_batch` shapes them) and the accounts the tests use,
and returns the settings of a service on that warehouse.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from orchestration_assets.service import accounts
from orchestration_assets.service.settings import ServiceSettings
from resources.warehouse import Warehouse
from tests.governance_fixtures import seed_batch
from tests.workflow import DEFS

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
# name -> roles; alice reviews support_triage, lead leads it, itlead leads it_service_desk only
USERS = {
    "alice": {"support_triage": "reviewer"},
    "bob": {"support_triage": "reviewer"},
    "lena": {"support_triage": "lead"},
    "ivan": {"it_service_desk": "lead"},
    "root": {"*": "admin"},
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def seeded_service(root: Path, families: dict, n: int = 10, users: dict | None = None) -> tuple[ServiceSettings, dict]:
    """Settings of a service on a fresh warehouse holding one seeded batch per family; returns (settings, routing)."""
    url = f"sqlite:///{root / 'warehouse.db'}"
    wh = Warehouse(url=url)
    routing = {name: seed_batch(wh, fam, n=n, partition=f"{name}-batch.csv") for name, fam in families.items()}
    for name, roles in (USERS if users is None else users).items():
        accounts.add_user(wh, name, PASSWORD, roles)
    return ServiceSettings(warehouse_url=url, defs_folder=DEFS, secret_key=SECRET), routing


def clone(settings: ServiceSettings, root: Path) -> ServiceSettings:
    """The same service on a copy of its (SQLite) warehouse: each test starts from the seeded state.

    Seeding once and copying the file saves each test the argon2 hashing of every account."""
    source = Path(settings.warehouse_url.removeprefix("sqlite:///"))
    root.mkdir(parents=True, exist_ok=True)
    # SQLite's backup API: a consistent copy, the write-ahead log included
    with sqlite3.connect(source) as src, sqlite3.connect(root / source.name) as dest:
        src.backup(dest)
    return settings.model_copy(update={"warehouse_url": f"sqlite:///{root / source.name}"})


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client, name: str, password: str = PASSWORD, expect: int = 303):
    """Sign in through the sign-in form (its CSRF token included); returns the POST's response."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == expect, response.text[:500]
    return response


class ServiceServer:
    """``workflow-service serve`` in its own process group on a free 127.0.0.1 port, stopped as a group."""

    def __init__(self, warehouse_url: str, data_dir: Path, env: dict | None = None, startup_timeout: float = 90):
        from tests.e2e.dagster_server import free_port

        self.warehouse_url, self.data_dir = warehouse_url, Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / f"service-{self.port}.log"
        self.extra_env, self.startup_timeout = dict(env or {}), startup_timeout
        self._proc: subprocess.Popen | None = None

    def start(self) -> "ServiceServer":
        from tests.e2e.dagster_server import ISOLATED_ENV_VARS, REPO_ROOT, VENV_BIN

        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**{k: v for k, v in os.environ.items() if k not in ISOLATED_ENV_VARS},
               "DATA_DIR": str(self.data_dir), "SERVICE_SECRET_KEY": SECRET,
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
               **self.extra_env}
        log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            [str(VENV_BIN / "python"), "-m", "orchestration_assets.service.cli", "--warehouse-url", self.warehouse_url,
             "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_up(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self._proc.returncode}; log:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/login", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the service did not answer within {self.startup_timeout:.0f}s; log:\n{self.log()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group, the leader included when it ignored SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "ServiceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

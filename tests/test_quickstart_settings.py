"""`make run` with the README's settings set: the quick start uses them, rather than crashing on them.

The probe behind this test found the quick start reading resources that still held unresolved
``EnvVar``s, so setting ``INBOX_DIR`` or ``WAREHOUSE_URL`` (the README's PostgreSQL path) ended in a
raw traceback before the UI. Here every folder and the warehouse are moved by environment variable.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAMILY = "refund_requests"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_quickstart_runs_with_every_folder_and_the_warehouse_set_by_environment(tmp_path):
    db = tmp_path / "elsewhere" / "warehouse.db"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "DATA_DIR": str(tmp_path / "data"),
           "WAREHOUSE_URL": f"sqlite:///{db}", "INBOX_DIR": str(tmp_path / "inbox"),
           "MODEL_DIR": str(tmp_path / "models"), "OUTBOX_DIR": str(tmp_path / "outbox"),
           "ALERTS_DIR": str(tmp_path / "alerts"), "GX_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, "-m", "orchestration_assets.quickstart", "--family", FAMILY],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=280)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"warehouse sqlite:///{db}" in done.stdout
    batches = sorted(p.name for p in (tmp_path / "inbox" / FAMILY).iterdir())
    assert batches, "the sample batches were not seeded into INBOX_DIR"
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute(f'SELECT COUNT(*) FROM "{FAMILY}__raw_records"').fetchone()
        (routed,) = conn.execute(f'SELECT COUNT(*) FROM "{FAMILY}__routing_decisions"').fetchone()
    assert raw > 0 and routed == raw
    # nothing went to the default places
    assert not (tmp_path / "data" / "warehouse.db").exists() and not (tmp_path / "data" / "inbox").exists()
    assert any((tmp_path / "outbox").rglob("*.json")), "no dispatched output in OUTBOX_DIR"

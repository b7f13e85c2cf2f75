"""Shared fixtures: temp warehouse/inbox/data dir, the embedded providers, a temp Dagster instance."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "orchestration_assets" / "sample_data"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "it_service_tickets" / "tickets.csv.gz"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """One model folder per test session, so the local classifier is trained once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("DATA_DIR", str(d))
    return d


def build_test_resources(data_dir: Path, model_dir: Path, **overrides) -> dict:
    from resources.policy import RoutingPolicyResource
    from resources.providers.local import LocalModelStore
    from resources.router import ModelRouter
    from resources.sources import ContextSources, TicketInbox
    from resources.warehouse import Warehouse, WarehouseIOManager

    warehouse = Warehouse(url=f"sqlite:///{data_dir / 'warehouse.db'}")
    res = {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "inbox": TicketInbox(path=str(data_dir / "inbox")),
        "sources": ContextSources(),
        "policy": RoutingPolicyResource(),
        "local_models": LocalModelStore(model_dir=str(model_dir)),
        "router": ModelRouter(),
    }
    res.update(overrides)
    return res


@pytest.fixture
def test_resources(data_dir, model_dir) -> dict:
    return build_test_resources(data_dir, model_dir)


@pytest.fixture
def instance():
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


def small_batch(dest: Path, name: str = "batch-test.csv", n: int = 40, source: str = "batch-2026-11-23.csv") -> Path:
    """The first ``n`` data rows of a bundled inbox file (malformed rows included where they fall)."""
    src = SAMPLE_DIR / "inbox" / source
    lines = src.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / name
    if source.endswith(".csv"):
        import csv
        import io

        reader = csv.reader(io.StringIO("".join(lines), newline=""))
        rows = list(reader)
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\n").writerows(rows[: n + 1])
        out.write_text(buf.getvalue(), encoding="utf-8", errors="surrogateescape")
    else:
        out.write_text("".join(lines[:n]), encoding="utf-8", errors="surrogateescape")
    return out


def copy_sample_file(dest: Path, name: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(SAMPLE_DIR / "inbox" / name, dest / name))


def materialization_metadata(result) -> dict[str, dict]:
    """asset key -> {metadata key: raw value} of a materialize() result's materializations."""
    out: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out

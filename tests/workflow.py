"""Running a family's workflow in tests: temp resources, a sample batch, an in-process run."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import dagster as dg

from orchestration_assets.core.records import suffixes
from orchestration_assets.family import Family

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
DEFS = Path(__file__).resolve().parent.parent / "orchestration_assets" / "defs"


def temp_resources(root: Path, model_dir: Path, **overrides) -> dict:
    """Every platform resource on temp folders and a temp SQLite warehouse (the local provider's models shared)."""
    from resources.notifier import Notifier
    from resources.outbox import Outbox
    from resources.providers.local.store import LocalModelStore
    from resources.registry.resource import ModelRegistryResource
    from resources.router.resource import ModelRouter
    from resources.sources import Inbox
    from resources.warehouse import Warehouse, WarehouseIOManager

    root.mkdir(parents=True, exist_ok=True)
    warehouse = overrides.pop("warehouse", None) or Warehouse(url=f"sqlite:///{root / 'warehouse.db'}")
    res = {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "registry": ModelRegistryResource(warehouse=warehouse),
        "inbox": Inbox(root=str(root / "inbox")),
        "local_models": LocalModelStore(model_dir=str(model_dir)),
        "router": ModelRouter(),
        "outbox": Outbox(folder=str(root / "outbox")),
        "notifier": Notifier(folder=str(root / "alerts")),
    }
    res.update(overrides)
    return res


def sample_files(family: Family) -> list[Path]:
    if not family.spec.source.sample:
        return []
    allowed = suffixes(family.spec.source.formats)
    return sorted(p for p in family.path(family.spec.source.sample).iterdir() if p.suffix.lower() in allowed)


def copy_batch(src: Path, dest: Path, n: int | None = None, name: str | None = None) -> Path:
    """``src`` copied to ``dest`` (a folder), keeping only its first ``n`` data rows (bad rows included)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / (name or src.name)
    if n is None:
        shutil.copy2(src, out)
        return out
    raw = src.read_text(encoding="utf-8", errors="surrogateescape")
    if src.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(raw, newline="")))
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\n").writerows(rows[: n + 1])
        out.write_text(buf.getvalue(), encoding="utf-8", errors="surrogateescape")
    else:
        out.write_text("".join(raw.splitlines(keepends=True)[:n]), encoding="utf-8", errors="surrogateescape")
    return out


def inbox_of(family: Family, resources: dict) -> Path:
    from orchestration_assets.ingestion import inbox_folder

    return inbox_folder(family, resources["inbox"])


def run_workflow(defs: dg.Definitions, family: Family, instance, partition: str, *, raise_on_error: bool = True):
    """The family's workflow job for one batch, in-process (registers the partition first)."""
    if partition not in instance.get_dynamic_partitions(family.partitions_name):
        instance.add_dynamic_partitions(family.partitions_name, [partition])
    return defs.resolve_job_def(family.job_name("workflow")).execute_in_process(
        partition_key=partition, instance=instance, run_config=IN_PROCESS, raise_on_error=raise_on_error,
        tags={"family": family.name})


def materialization_metadata(result) -> dict[str, dict]:
    """asset key (``family/asset``) -> {metadata key: raw value} of a run's materializations."""
    out: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return out


def check_results(result) -> dict[tuple[str, str], object]:
    """(asset key, check name) -> the evaluation of every check that ran in ``result``."""
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            out[(ev.asset_key.to_user_string(), ev.check_name)] = ev
    return out


def user_project(root: Path) -> Path:
    """A user's own dg project that uses the platform's component and resources; returns its defs folder."""
    (root / "userproj" / "defs").mkdir(parents=True)
    (root / "userproj" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "userproj"\nversion = "0.1"\n[tool.dg]\ndirectory_type = "project"\n'
        '[tool.dg.project]\nroot_module = "userproj"\nregistry_modules = ["orchestration_assets.components"]\n')
    (root / "userproj" / "definitions.py").write_text(
        "from pathlib import Path\nimport dagster as dg\nfrom orchestration_assets.platform import platform_defs\n\n"
        "@dg.definitions\ndef defs():\n"
        "    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent),\n"
        "                                platform_defs())\n")
    return root / "userproj" / "defs"

"""``dg scaffold defs orchestration_assets.components.AIWorkflow <name>``: a working family skeleton.

Copies ``scaffold_template/`` into the new folder with the family name filled in: a ``defs.yaml``
that loads and runs as is (a topic classifier, a summary, sentiment, a policy, review and
dispatch), a small labelled file to replace with real data, and a sample batch.
"""

import re
import shutil
from pathlib import Path

import dagster as dg

TEMPLATE = Path(__file__).resolve().parent / "scaffold_template"


def scaffold_family(target: Path) -> Path:
    """Write the skeleton into ``target`` (named after its folder); returns the defs.yaml path."""
    name = re.sub(r"[^a-z0-9_]", "_", target.name.lower()).strip("_") or "new_family"
    if not re.match(r"^[a-z]", name):
        name = f"family_{name}"
    target.mkdir(parents=True, exist_ok=True)
    for src in TEMPLATE.rglob("*"):
        if src.is_dir():
            continue
        rel = src.relative_to(TEMPLATE)
        dest = target / (rel.with_suffix("") if src.suffix == ".tmpl" else rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix in (".tmpl", ".md"):
            dest.write_text(src.read_text(encoding="utf-8").replace("{name}", name), encoding="utf-8")
        else:
            shutil.copy2(src, dest)
    return target / "defs.yaml"


class WorkflowScaffolder(dg.Scaffolder):
    """Scaffolds a new workflow family folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        scaffold_family(Path(request.target_path))

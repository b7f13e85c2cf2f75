"""A new use case with no Python: `dg scaffold defs`, a YAML edit and a labelled CSV, run end to end."""

from __future__ import annotations

import csv
import os
import random
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestration_assets.family import Family
from orchestration_assets.loading import family_definitions
from tests.workflow import copy_batch, inbox_of, run_workflow, sample_files, temp_resources, user_project

pytestmark = pytest.mark.filterwarnings("ignore")
REPO = Path(__file__).resolve().parent.parent
DG = REPO / ".venv" / "bin" / "dg"
PHRASES = {
    "hardware": ["my laptop screen flickers", "the docking station does not charge", "keyboard keys stopped working",
                 "monitor shows no signal", "the printer jams on every page", "mouse is not detected"],
    "access": ["cannot log in to the vpn", "password expired and reset fails", "need access to the finance share",
               "account locked after failed attempts", "mfa code never arrives", "badge does not open the door"],
    "software": ["excel crashes when opening macros", "outlook will not sync my calendar",
                 "the update failed with an error", "licence for the design tool expired",
                 "browser extension blocks the intranet", "teams freezes during calls"],
}


def dg(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(project / ".dagster_home")}
    (project / ".dagster_home").mkdir(exist_ok=True)
    (project / ".dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run([str(DG), *args], cwd=project, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's own dg project that uses the platform's component."""
    root = tmp_path / "userproj"
    user_project(root)
    return root


def write_labelled(path: Path, n_per_label: int = 30) -> None:
    rng = random.Random(11)
    rows = []
    for label, phrases in PHRASES.items():
        for i in range(n_per_label):
            text = f"{rng.choice(phrases)} since {rng.choice(['monday', 'this morning', 'the update', 'yesterday'])}"
            rows.append({"Request": f"REQ-{label[:2]}{i:03d}", "Submitted": f"2026-11-{1 + i % 28:02d}T08:00:00Z",
                         "Title": text.split(" since")[0], "Description": text + f", please help ({i})", "Team": label})
    rng.shuffle(rows)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_scaffold_edit_and_run_a_new_family_without_python(project, tmp_path, model_dir, instance):
    out = dg(project, "scaffold", "defs", "orchestration_assets.components.AIWorkflow", "it_requests")
    assert out.returncode == 0, out.stdout + out.stderr
    folder = project / "userproj" / "defs" / "it_requests"
    assert {p.name for p in folder.iterdir()} >= {"defs.yaml", "data", "sample_inbox", "README.md"}

    # the skeleton itself is a working family
    checked = dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # the user's edit: their own export's column names, labels taken from their file, a stricter rule
    write_labelled(folder / "data" / "labelled.csv")
    doc = yaml.safe_load((folder / "defs.yaml").read_text())
    attrs = doc["attributes"]
    attrs["record"]["columns"] = {"Request": "message_id", "Submitted": "received_at", "Title": "subject",
                                  "Description": "text"}
    attrs["tasks"]["topic"]["label_column"] = "Team"
    attrs["policy"].append({"when": "topic == 'access'", "action": "human_review", "reason": "ACCESS_CHANGE"})
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "sample_inbox" / "batch-example.csv").unlink()
    with (folder / "sample_inbox" / "batch-1.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Request", "Submitted", "Title", "Description"])
        w.writerows([["NEW-1", "2026-12-01T09:00:00Z", "vpn", "cannot log in to the vpn since monday"],
                     ["NEW-2", "2026-12-01T09:05:00Z", "screen", "my laptop screen flickers since the update"],
                     ["NEW-3", "2026-12-01T09:10:00Z", "excel", "excel crashes when opening macros, please help"],
                     ["NEW-3", "2026-12-01T09:11:00Z", "dupe", "the same request sent twice by mistake"]])

    listed = dg(project, "list", "defs")
    assert listed.returncode == 0 and "it_requests/enriched_records" in listed.stdout, listed.stdout[-2000:]

    family = Family.load(folder)
    assert family.tasks["topic"].labels == ("access", "hardware", "software")
    resources = temp_resources(tmp_path / "run", model_dir)
    defs = family_definitions([family], resources)
    assert defs.resolve_job_def(family.job_name("training")).execute_in_process(instance=instance).success
    batch = copy_batch(sample_files(family)[0], inbox_of(family, resources))
    assert run_workflow(defs, family, instance, batch.name).success

    wh = resources["warehouse"]
    assert wh.count_rows(family.table("quarantined_records")) == 1  # the duplicate id
    decisions = wh.read_table(family.table("routing_decisions")).set_index("record_id")
    enriched = wh.read_table(family.table("enriched_records")).set_index("record_id")
    assert set(decisions.index) == {"NEW-1", "NEW-2", "NEW-3"}
    assert enriched.loc["NEW-1", "topic"] == "access" and enriched.loc["NEW-2", "topic"] == "hardware"
    assert "ACCESS_CHANGE" in decisions.loc["NEW-1", "reasons"] and decisions.loc["NEW-1", "decision"] == "human_review"
    assert wh.count_rows(family.table("kpi_daily")) >= 1

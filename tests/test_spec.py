"""A family spec that cannot work fails at load, naming the file, the key path and the reason."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestration_assets.family import Family, SpecError
from tests.workflow import DEFS, user_project

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def attributes() -> dict:
    return yaml.safe_load((DEFS / "support_triage" / "defs.yaml").read_text())["attributes"]


def load(attrs: dict, models: set[str] | None = None) -> Family:
    return Family.from_attributes(attrs, DEFS / "support_triage", "defs/support_triage/defs.yaml", models)


def problems(attrs: dict, models: set[str] | None = None) -> list[str]:
    with pytest.raises(SpecError) as err:
        load(attrs, models)
    assert "Traceback" not in str(err.value)
    return str(err.value).splitlines()


def edited(attributes: dict, edit) -> dict:
    attrs = copy.deepcopy(attributes)
    edit(attrs)
    return attrs


def test_the_bundled_families_load(families):
    assert set(families) == {"support_triage", "it_service_desk", "refund_requests"}
    st = families["support_triage"]
    assert list(st.tasks) == ["category", "priority", "sentiment", "summary", "reply", "compliance", "refund"]
    assert len(st.tasks["category"].labels) == 8 and st.tasks["priority"].labels == ("low", "medium", "high", "urgent")
    assert len(families["it_service_desk"].tasks["topic"].labels) == 8
    assert families["refund_requests"].tasks_of("extract")


@pytest.mark.parametrize("edit, expected", [
    (lambda a: a["tasks"]["category"].update(labels=["only_one"]),
     "tasks.category.labels: a classify task needs at least two labels"),
    (lambda a: a["tasks"]["category"].update(labelz=1), "tasks.category.labelz: unknown key (typo?)"),
    (lambda a: a["tasks"]["summary"].update(type="summarise"), "tasks.summary: unknown task type"),
    (lambda a: a["record"].update(text=["subjekt"]), "record.text: 'subjekt' is not one of the fields"),
    (lambda a: a["record"].pop("id"), "record.id: required key is missing"),
    (lambda a: a["record"]["columns"].update(Document="nowhere"), "record.columns.Document: 'nowhere' is not one of the fields"),
    (lambda a: a["tasks"]["priority"].update(uses=["sentimnt"]), "tasks.priority.uses[0]: unknown task 'sentimnt'"),
    (lambda a: a["tasks"]["category"].update(uses=["priority"]), "tasks use each other in a cycle"),
    (lambda a: a["tasks"]["priority"]["features"].append("account.colour"),
     "tasks.priority.features[4]: 'account.colour': lookup 'account' has no column 'colour'"),
    (lambda a: a["routing"].update(sentiment={"provider": "local", "escalate_below_confidence": 0.5,
                                              "escalate_to": ["gpt-4o-mini"]}),
     "routing.sentiment: sentiment answers have no confidence to judge"),
    (lambda a: a["review"].update(relabel_task="summary"), "review.relabel_task: relabel needs relabel_task: a classify task"),
    (lambda a: a["dispatch"].update(output="summary"), "dispatch.output: 'summary' is not a draft task"),
    (lambda a: a.update(owners=["support ops"]), "owners: owners must be team:<name> or an e-mail address"),
    (lambda a: a["schedules"].update(kpis="every day") if "schedules" in a else a.update(schedules={"kpis": "daily"}),
     "is not a 5-field cron expression"),
    (lambda a: a["tasks"]["compliance"]["rules"]["legal"].update(patterns=["(unclosed"]), "invalid regular expression"),
])
def test_structural_mistakes_name_the_key_path(attributes, edit, expected):
    lines = problems(edited(attributes, edit))
    assert any(line.startswith("defs/support_triage/defs.yaml: ") and expected in line for line in lines), lines


@pytest.mark.parametrize("when, expected", [
    ("categroy == 'billing'", "unknown name(s) ['categroy']"),
    ("category == ", "Syntax error"),
    ("category < 3", "No such overload"),
])
def test_policy_conditions_are_compiled_and_type_checked_at_load(attributes, when, expected):
    attrs = edited(attributes, lambda a: a["policy"].append({"when": when, "action": "escalate", "reason": "X"}))
    lines = problems(attrs)
    n = len(attributes["policy"])
    assert any(line.startswith(f"defs/support_triage/defs.yaml: policy[{n}].when: ") and expected in line
               for line in lines), lines


def test_routes_name_models_of_the_catalog(attributes):
    attrs = edited(attributes, lambda a: a["routing"].update(
        category={"provider": "local", "escalate_below_confidence": 0.6, "escalate_to": ["gpt-5o"]}))
    lines = problems(attrs, models={"gpt-4o-mini"})
    assert lines == ["defs/support_triage/defs.yaml: routing.category.escalate_to[0]: unknown model 'gpt-5o'; "
                     "the model catalog has: gpt-4o-mini"]
    assert load(edited(attributes, lambda a: a["routing"].update(
        category={"provider": "local", "escalate_below_confidence": 0.6, "escalate_to": ["gpt-4o-mini"]})),
        models={"gpt-4o-mini"}).route("category").is_cascade


def test_files_the_spec_names_must_exist(attributes):
    lines = problems(edited(attributes, lambda a: a["tasks"]["reply"].update(template="templates/missing.j2")))
    assert lines == ["defs/support_triage/defs.yaml: tasks.reply.template: file 'templates/missing.j2' not found "
                     "in orchestration_assets/defs/support_triage"]


def test_a_label_column_missing_from_the_training_file_is_named(attributes):
    lines = problems(edited(attributes, lambda a: a["tasks"]["category"].update(label_column="topic")))
    assert any("tasks.category.label_column: 'topic' is not a column of labelled_tickets.csv" in line for line in lines)


def test_invalid_yaml_names_the_line(tmp_path):
    (tmp_path / "defs.yaml").write_text("type: orchestration_assets.components.AIWorkflow\nattributes:\n  name: [x\n")
    with pytest.raises(SpecError, match=r"defs.yaml: not valid YAML: line \d+, column \d+"):
        Family.load(tmp_path)


def test_dg_check_defs_reports_a_broken_family_with_file_key_and_reason(tmp_path):
    """The code location's own loader (Dagster components) shows the same message."""
    project = tmp_path / "proj"
    folder = user_project(project) / "broken"
    shutil.copytree(DEFS / "support_triage", folder)
    text = (folder / "defs.yaml").read_text().replace("label_column: labelled_category", "label_column: topik")
    (folder / "defs.yaml").write_text(text)
    out = subprocess.run([str(REPO / ".venv" / "bin" / "dg"), "check", "defs"], cwd=project, capture_output=True,
                         text=True, timeout=240, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                                      "HOME": str(tmp_path)})
    combined = out.stdout + out.stderr
    assert out.returncode != 0
    assert "userproj/defs/broken/defs.yaml: tasks.category.label_column: 'topik' is not a column of " \
           "labelled_tickets.csv" in combined, combined[-3000:]

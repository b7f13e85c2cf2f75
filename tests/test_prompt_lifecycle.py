"""A family's prompt file: checked at load, registered by its asset, live only once promoted, operated by the CLI."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration_assets.core.enrichment import task_frame
from orchestration_assets.family import Family, SpecError
from orchestration_assets.prompt_assets import live_task, prompt_assets, with_prompt_versions
from orchestration_assets.registry_cli import main as registry_cli
from resources.providers.base import Item, TaskResult
from resources.providers.openai import OpenAIProvider
from resources.providers.prompt_templates import DEFAULT_TEMPLATE
from resources.providers.prompts import system_prompt
from resources.registry.resource import ModelRegistryResource
from resources.router.catalog import EndpointConfig, ModelConfig, Price
from resources.warehouse import Warehouse
from tests.workflow import DEFS

V1 = DEFAULT_TEMPLATE.replace("{{ instructions }}", "Pick the label. House style v1.")
V2 = DEFAULT_TEMPLATE.replace("{{ instructions }}", "Pick the label. House style v2, stricter.")


@pytest.fixture
def folder(tmp_path) -> Path:
    """A copy of a bundled family whose ``category`` task has a prompt file and a route to a model."""
    root = tmp_path / "support_triage"
    shutil.copytree(DEFS / "support_triage", root)
    doc = yaml.safe_load((root / "defs.yaml").read_text())
    doc["attributes"]["tasks"]["category"]["prompt"] = "prompts/category.md.j2"
    doc["attributes"]["routing"] = {"category": {"provider": "gpt-test"}}
    (root / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "prompts").mkdir()
    (root / "prompts" / "category.md.j2").write_text(V1)
    return root


def load_problems(folder: Path) -> list[str]:
    with pytest.raises(SpecError) as err:
        Family.load(folder)
    assert "Traceback" not in str(err.value)
    return str(err.value).splitlines()


@pytest.mark.parametrize("text, reason", [
    (None, "tasks.category.prompt: file 'prompts/category.md.j2' not found in"),
    ("Answer.\n{% if task %}\n{{ schema_line }}\n", "tasks.category.prompt: prompts/category.md.j2: template syntax error on "
     "line 3: Unexpected end of template"),
    ("Answer {{ taks }}.\n{{ schema_line }}\n", "the template does not render: 'taks' is undefined"),
    ("Answer {{ task }} as JSON.\n", "the template must end with {{ schema_line }}"),
])
def test_a_bad_prompt_file_fails_at_load_naming_file_key_and_reason(folder, text, reason):
    path = folder / "prompts" / "category.md.j2"
    path.unlink() if text is None else path.write_text(text)
    (line,) = load_problems(folder)
    assert line.startswith(f"{folder / 'defs.yaml'}: ")
    assert reason in line


def test_instructions_a_template_ignores_fail_at_load(folder):
    (folder / "prompts" / "category.md.j2").write_text("Answer {{ task }}.\n{{ schema_line }}\n")
    doc = yaml.safe_load((folder / "defs.yaml").read_text())
    doc["attributes"]["tasks"]["category"]["instructions"] = "Be strict."
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (line,) = load_problems(folder)
    assert "tasks.category.prompt: the template does not use {{ instructions }}" in line


def test_the_file_is_the_system_prompt_and_instructions_are_part_of_the_version(folder):
    from resources.providers.prompt_templates import template_text

    task = Family.load(folder).tasks["category"]
    assert "House style v1." in system_prompt(task) and system_prompt(task).splitlines()[-1].startswith("JSON schema: ")
    (folder / "prompts" / "category.md.j2").write_text(DEFAULT_TEMPLATE)
    doc = yaml.safe_load((folder / "defs.yaml").read_text())
    doc["attributes"]["tasks"]["category"]["instructions"] = "Use {{ braces }} literally."
    (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    task = Family.load(folder).tasks["category"]
    assert "Use {{ braces }} literally." in template_text(task)  # the registered text holds the instructions
    assert "Use {{ braces }} literally." in system_prompt(task)  # and renders them as written


def _registry(tmp_path) -> ModelRegistryResource:
    return ModelRegistryResource(warehouse=Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}"))


def _materialize_prompt(folder: Path, registry: ModelRegistryResource) -> dict:
    family = Family.load(folder)
    (asset,) = [a for a in prompt_assets(family) if a.key.path[-1] == "category_prompt"]
    result = dg.materialize([asset], resources={"registry": registry})
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _system_message(family: Family, registry: ModelRegistryResource) -> str:
    live = live_task(family, family.tasks["category"], registry, "user:test")
    model = ModelConfig(endpoint="test", model="gpt-test", price=Price(input_per_1m=1.0, output_per_1m=1.0))
    provider = OpenAIProvider(model, EndpointConfig(base_url="http://127.0.0.1:9/v1"), api_key="sk-x", endpoint_name="test")
    call = provider.prepare(live, Item(id="R-1", text="My invoice is wrong", fields={"subject": "Invoice", "body": "wrong"}))
    return call.messages[0]["content"]


def test_a_changed_file_becomes_challenger_and_live_calls_keep_the_champion_text(folder, tmp_path):
    registry = _registry(tmp_path)
    first = _materialize_prompt(folder, registry)
    assert (first["alias"], first["registered"]) == ("champion", True)
    assert _materialize_prompt(folder, registry)["registered"] is False  # unchanged file: nothing new

    (folder / "prompts" / "category.md.j2").write_text(V2)
    second = _materialize_prompt(folder, registry)
    assert second["alias"] == "challenger" and second["champion_version"] == first["version"]
    assert "-Pick the label. House style v1." in second["diff_to_champion"]
    assert "+Pick the label. House style v2, stricter." in second["diff_to_champion"]

    family = Family.load(folder)  # the definitions reloaded with the new file
    assert "House style v2" in system_prompt(family.tasks["category"])
    live = _system_message(family, registry)
    assert "House style v1." in live and "v2" not in live  # the champion's stored text, not the file

    registry.prompts().promote("support_triage", "category", "challenger", actor="user:ops", reason="reviewed")
    assert "House style v2, stricter." in _system_message(family, registry)


def test_a_route_may_pin_the_challenger_or_a_version_and_an_unknown_one_fails_naming_the_key(folder, tmp_path):
    registry = _registry(tmp_path)
    v1 = _materialize_prompt(folder, registry)["version"]
    (folder / "prompts" / "category.md.j2").write_text(V2)
    _materialize_prompt(folder, registry)

    def with_route(prompt: str) -> Family:
        doc = yaml.safe_load((folder / "defs.yaml").read_text())
        doc["attributes"]["routing"]["category"]["prompt"] = prompt
        (folder / "defs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return Family.load(folder)

    assert "House style v2" in _system_message(with_route("challenger"), registry)
    assert "House style v1." in _system_message(with_route(v1), registry)
    with pytest.raises(dg.Failure) as err:
        _system_message(with_route("0123456789abcdef"), registry)
    assert "defs.yaml: routing.category.prompt: '0123456789abcdef'" in str(err.value.description)
    assert v1 in str(err.value.description)  # it lists what is registered


def test_rows_an_llm_answered_record_the_prompt_version_they_used(folder, tmp_path):
    registry = _registry(tmp_path)
    family = Family.load(folder)
    live = live_task(family, family.tasks["category"], registry, "user:test")  # first run: registers the file
    version = registry.prompts().alias("support_triage", "category", "champion").version

    def result(rid: str, provider: str) -> TaskResult:
        return TaskResult(record_id=rid, task="category", output={"label": "billing", "confidence": 0.9}, confidence=0.9,
                          provider=provider, model_id="m", model_version="m", prompt_hash="h", path="llm")

    frame = task_frame(live, [result("R-1", "test"), result("R-2", "local")])
    frame = with_prompt_versions(frame, live, "local")
    assert frame["category_prompt_version"].tolist() == [version, None]


def cli(capsys, url: str, *args: str) -> tuple[int, str, str]:
    code = registry_cli(["--warehouse-url", url, "prompts", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_lists_shows_diffs_promotes_and_rolls_back_prompts(folder, tmp_path, capsys):
    registry = _registry(tmp_path)
    url = registry.warehouse.url
    v1 = _materialize_prompt(folder, registry)["version"]
    (folder / "prompts" / "category.md.j2").write_text(V2)
    v2 = _materialize_prompt(folder, registry)["version"]

    code, out, _ = cli(capsys, url, "list", "--family", "support_triage")
    assert code == 0 and v1 in out and v2 in out and "champion" in out and "challenger" in out
    code, out, _ = cli(capsys, url, "show", "support_triage", "category", "challenger")
    assert code == 0 and out.startswith(f"# support_triage.category@{v2} (challenger)") and "House style v2" in out
    code, out, _ = cli(capsys, url, "diff", "support_triage", "category", "champion", v2)
    assert code == 0 and "-Pick the label. House style v1.\n" in out and "+Pick the label. House style v2, stricter.\n" in out

    code, out, _ = cli(capsys, url, "promote", "support_triage", "category", v2, "--reason", "golden set ok",
                       "--actor", "user:ops")
    assert code == 0 and f"champion prompt {v1} -> {v2}" in out
    code, out, _ = cli(capsys, url, "rollback", "support_triage", "category", "--reason", "complaints")
    assert code == 0 and f"champion prompt {v2} -> {v1}" in out
    code, out, _ = cli(capsys, url, "history", "--task", "category")
    assert code == 0 and "golden set ok" in out and "complaints" in out and "user:ops" in out

    before = registry.prompts().history()
    code, _, err = cli(capsys, url, "promote", "support_triage", "category", "nope", "--reason", "x")
    assert code == 2 and err.startswith("model-registry: prompts promote refused: support_triage.category: "
                                        "no prompt version 'nope'")
    assert registry.prompts().history().equals(before)  # the refused promotion changed nothing
    assert registry.prompts().alias("support_triage", "category", "champion").version == v1

"""The model catalog (the deployment's endpoints and models) and the router as a Dagster resource."""

import json

import dagster as dg
import pytest
import yaml

from resources.router import ModelRouter
from resources.router.catalog import CatalogError, load_catalog
from resources.router.routes import TaskRoute
from tests.router_fixtures import SECRET, catalog, make_items, routed, router_for, session_for
from tests.router_fixtures import family, local, server, warehouse  # noqa: F401 - pytest fixtures


# ---- the catalog ------------------------------------------------------------------------------


def test_default_catalog_has_no_remote_model_and_everything_is_local(family, local, warehouse, monkeypatch):
    monkeypatch.delenv("MODELS_CONFIG", raising=False)
    router = ModelRouter()
    assert router.catalog().models == {}
    session = router.session(family=family.name, routes=family.spec.routing, budget=family.spec.budget, local=local,
                             warehouse=warehouse, run_id="r-default")
    items = make_items(6)
    batch = session.run(family.tasks["category"], items)
    assert batch.task == "category" and [r.record_id for r in batch.results] == [i.id for i in items]
    assert {r.path for r in batch.results} == {"local"} and {r.provider for r in batch.results} == {"fake-local"}
    stats = session.stats()
    assert stats.calls == 0 and stats.cost_usd == 0 and stats.budget_remaining_usd == 2.0


def test_models_config_env_names_the_default_catalog(tmp_path, monkeypatch, server):
    path = tmp_path / "env-models.yaml"
    path.write_text(yaml.safe_dump(catalog(server.url)), encoding="utf-8")
    monkeypatch.setenv("MODELS_CONFIG", str(path))
    assert set(load_catalog().models) == {"small"} and set(ModelRouter().catalog().models) == {"small"}


def test_example_catalog_is_valid_and_without_a_key_falls_back(family, local, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    example = load_catalog("resources/models.example-openai.yaml")
    assert set(example.models) == {"gpt-4o-mini", "gpt-4o"} and example.models["gpt-4o"].price.output_per_1m == 10.0
    router = ModelRouter(config_path="resources/models.example-openai.yaml")
    routes = {"reply": TaskRoute(provider="gpt-4o", fallbacks=["gpt-4o-mini", "local"])}
    session = session_for(router, local, routes)
    batch = session.run(family.tasks["reply"], make_items(3))
    assert {r.path for r in batch.results} == {"fallback:no_api_key"}
    assert all(r.output["text"] for r in batch.results) and session.stats().calls == 0


@pytest.mark.parametrize(
    "content, expected",
    [
        ("models: {m: {endpoint: nowhere, model: x}}\n", "models.m.endpoint: unknown endpoint 'nowhere'; known: (none)"),
        ("endpoints: {e: {timeout: 3}}\n", "endpoints.e.timeout: unknown key (typo?)"),
        ("endpoints: {e: {}}\nmodels: {local: {endpoint: e, model: x}}\n", "models.local: 'local' is the built-in"),
        ("endpoints: {e: {}}\nmodels: {m: {endpoint: e, model: x, structured_output: xml}}\n",
         "models.m.structured_output: Input should be 'json_schema', 'json_object_schema', 'json_object' or 'none'"),
        ("tasks: {classify: {provider: local}}\n", "tasks: unknown key (typo?)"),
        ("concurrency: 0\n", "concurrency: Input should be greater than or equal to 1"),
        ("models: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_bad_catalog_names_file_key_and_reason(tmp_path, content, expected):
    path = tmp_path / "bad-models.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(str(path))
    assert str(err.value).startswith(str(path) + ": ") and expected in str(err.value)


def test_missing_catalog_file_is_named():
    with pytest.raises(CatalogError, match="nope.yaml: model catalog file not found"):
        ModelRouter(config_path="/tmp/definitely/nope.yaml").catalog()


def test_a_route_to_a_model_the_catalog_lacks_fails_naming_it(tmp_path, server, local):
    router = router_for(tmp_path, catalog(server.url))
    with pytest.raises(ValueError, match=r"routing.category.escalate_to\[0\]: 'gpt-9'"):
        session_for(router, local, {"category": TaskRoute(escalate_below_confidence=0.5, escalate_to=["gpt-9"])})



def test_the_resource_in_an_asset_with_an_env_var_key(family, local, server, tmp_path, warehouse, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", SECRET)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog(server.url)), encoding="utf-8")

    @dg.asset
    def summaries(context: dg.AssetExecutionContext, router: ModelRouter) -> None:
        session = router.session(family=family.name, routes=routed("summary"), budget=family.spec.budget, local=local,
                                 warehouse=warehouse, run_id=context.run.run_id, logger=context.log)
        session.run(family.tasks["summary"], make_items(4))
        context.add_output_metadata(session.stats().as_metadata())

    router = ModelRouter(config_path=str(path), api_key=dg.EnvVar("TEST_LLM_KEY"))
    result = dg.materialize([summaries], resources={"router": router})
    md = result.asset_materializations_for_node("summaries")[0].metadata
    assert md["llm.calls"].value == 4 and md["llm.paths.llm"].value == 4
    assert md["llm.budget_remaining_usd"].value == pytest.approx(2.0 - md["llm.cost_usd"].value, abs=1e-6)
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps({k: str(v.value) for k, v in md.items()})

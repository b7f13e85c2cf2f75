"""Every configuration is checked when definitions load, before any run works or spends.

A family's spec (its policy's keys and values, its lookups' URLs, its webhook), the model catalog
(``MODELS_CONFIG``) and the platform's environment settings (``WAREHOUSE_URL``, the folders, the
alerts webhook) each fail the load with the file or variable, the key and the reason; a warehouse
that stops answering at run time fails with one error naming ``WAREHOUSE_URL``, password hidden.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestration_assets.loading import load_families
from orchestration_assets.platform import platform_defs, with_dependents
from resources.configuration import ConfigError
from resources.router.catalog import CatalogError
from resources.warehouse import Warehouse
from resources.warehouse_url import WarehouseError
from tests.workflow import DEFS, user_project

REPO = Path(__file__).resolve().parent.parent
FAMILY = "refund_requests"  # the smallest bundled family: a copy costs little
SETTINGS = ("WAREHOUSE_URL", "INBOX_DIR", "MODEL_DIR", "OUTBOX_DIR", "ALERTS_DIR", "ALERTS_WEBHOOK_URL",
            "MODELS_CONFIG", "OPENAI_API_KEY", "DATA_DIR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def copied_family(tmp_path: Path, edit) -> Path:
    """A defs folder holding a copy of the family, its defs.yaml attributes changed by ``edit``."""
    defs = tmp_path / "defs"
    shutil.copytree(DEFS / FAMILY, defs / FAMILY)
    path = defs / FAMILY / "defs.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc["attributes"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return defs


def load_error(defs: Path, kind: type[Exception] = ConfigError) -> list[str]:
    with pytest.raises(kind) as err:
        load_families(defs)
    return str(err.value).splitlines()


def replace_rule(attrs: dict, reason: str, when: str) -> int:
    index = next(i for i, r in enumerate(attrs["policy"]) if r["reason"] == reason)
    attrs["policy"][index]["when"] = when
    return index


# ---- the family spec --------------------------------------------------------------------------
@pytest.mark.parametrize("reason, when, expected", [
    # a key the lookup lacks would fail on every record at run time (POLICY_ERROR, after the models ran)
    ("ALREADY_REFUNDED", "order.stauts == 'refunded'", "'order' has no key 'stauts'"),
    ("MISSING_AMOUNT", "refund.amont == null", "'refund' has no key 'amont'"),
    # a value the column never has makes the rule silently never fire
    ("ALREADY_REFUNDED", "order.status == 'refundd'", "'refundd' is never a value of order.status"),
    ("ORDER_CANCELLED", "refund.reason in ['damaged', 'lost']", "'lost' is never a value of refund.reason"),
])
def test_a_policy_rule_that_can_never_work_fails_the_load(tmp_path, reason, when, expected):
    index = None

    def edit(attrs):
        nonlocal index
        index = replace_rule(attrs, reason, when)

    lines = load_error(copied_family(tmp_path, edit))
    assert any(line.startswith(f"{tmp_path}/defs/{FAMILY}/defs.yaml: policy[{index}].when: ") and expected in line
               for line in lines), lines


def test_the_bundled_policies_pass_the_same_checks():
    assert {f.name for f in load_families(DEFS)} == {"support_triage", "it_service_desk", "refund_requests"}


def test_urls_a_family_reads_from_the_environment_are_checked_when_set(tmp_path, monkeypatch):
    def edit(attrs):
        attrs["context"]["orders"].pop("file")
        attrs["context"]["orders"]["sql"] = {"url_env": "SHOP_DB_URL", "table": "orders"}
        attrs["dispatch"]["webhook_url_env"] = "REFUND_HOOK"

    defs = copied_family(tmp_path, edit)
    assert load_families(defs)  # unset: read at run time, which fails naming the variable
    monkeypatch.setenv("SHOP_DB_URL", "shop-db.internal:5432/orders")
    monkeypatch.setenv("REFUND_HOOK", "hooks.example.com/T000/s3cret-token")
    text = "\n".join(load_error(defs))
    assert "context.orders.sql.url_env: environment variable SHOP_DB_URL: " in text
    assert "not a valid SQLAlchemy URL" in text
    assert "dispatch.webhook_url_env: environment variable REFUND_HOOK: not an http(s) URL" in text
    assert "s3cret-token" not in text


# ---- the model catalog ------------------------------------------------------------------------
@pytest.mark.parametrize("catalog, expected", [
    ({"endpoints": {"vllm": {"base_url": "localhost:8000/v1"}}}, "endpoints.vllm.base_url: 'localhost:8000/v1': not an http(s) URL"),
    ({"endpoints": {"e": {"api_key_env": "sk-live-123"}}}, "endpoints.e.api_key_env: not an environment variable name"),
    ({"endpoints": {"e": {}}, "models": {"m": {"endpoint": "e", "model": "x", "params": {"max_tokens": "lots"}}}},
     "models.m.params: max_tokens must be an integer from 1 to 1000000, got 'lots'"),
    ({"endpoints": {"e": {}}, "models": {"m": {"endpoint": "e", "model": "x", "params": {"model": "other"}}}},
     "models.m.params: 'model' is set by the router, not here"),
])
def test_a_bad_models_config_fails_the_load_naming_the_variable_file_and_key(tmp_path, monkeypatch, catalog, expected):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog))
    monkeypatch.setenv("MODELS_CONFIG", str(path))
    lines = load_error(DEFS, CatalogError)
    assert any(line.startswith(f"{path} (from MODELS_CONFIG): ") and expected in line for line in lines), lines
    assert "sk-live-123" not in "\n".join(lines)  # a key pasted where its variable's name belongs is not echoed


def test_a_missing_models_config_file_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELS_CONFIG", str(tmp_path / "nope.yaml"))
    assert load_error(DEFS, CatalogError) == [f"{tmp_path / 'nope.yaml'} (from MODELS_CONFIG): model catalog file not found"]


# ---- the environment settings -----------------------------------------------------------------
def test_bad_settings_fail_the_load_naming_each_variable(tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    monkeypatch.setenv("WAREHOUSE_URL", "warehouse-db:5432")
    monkeypatch.setenv("INBOX_DIR", str(a_file))
    monkeypatch.setenv("MODEL_DIR", str(a_file / "models"))
    monkeypatch.setenv("ALERTS_WEBHOOK_URL", "hooks.example.com/services/s3cret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-s3cret\n")
    with pytest.raises(ConfigError) as err:
        platform_defs()
    assert str(err.value).splitlines() == [
        "environment: WAREHOUSE_URL: warehouse-db:5432: not a valid SQLAlchemy URL; expected e.g. "
        "postgresql+psycopg://user:password@host/database or sqlite:///path/warehouse.db",
        f"environment: INBOX_DIR: {a_file} is a file, not a folder",
        f"environment: MODEL_DIR: cannot create the folder {a_file / 'models'}: {a_file} is a file",
        "environment: OPENAI_API_KEY: the key holds whitespace or a control character (a line break copied with it?)",
        "environment: ALERTS_WEBHOOK_URL: not an http(s) URL (expected e.g. https://host/path)",
    ]
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize("url, expected", [
    ("postgresql+psycopg://ops:s3cret@db.internal/warehouse",
     "postgresql+psycopg://ops:***@db.internal/warehouse: its database driver is not installed ('psycopg'); "
     "install the project's 'postgres' extra: pip install -e '.[postgres]'"),
    ("mysql+pymysql://ops:s3cret@db.internal/warehouse", "its database driver is not installed ('pymysql')"),
    ("postgresq://ops:s3cret@db.internal/warehouse", "unknown database 'postgresq'"),
])
def test_a_warehouse_url_whose_driver_or_dialect_is_missing_fails_the_load(monkeypatch, url, expected):
    driver = url.split("://")[0].partition("+")[2]
    if driver and importlib.util.find_spec(driver):
        # installed here (psycopg comes with the test extra): hidden, as on a machine without it
        monkeypatch.setitem(sys.modules, driver, None)
    monkeypatch.setenv("WAREHOUSE_URL", url)
    with pytest.raises(ConfigError) as err:
        platform_defs()
    assert str(err.value).startswith("environment: WAREHOUSE_URL: ") and expected in str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_setting_whose_resource_is_given_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", "not a url")
    resources = with_dependents({"warehouse": Warehouse(url=f"sqlite:///{tmp_path / 'w.db'}")})
    assert resources["warehouse"].url.endswith("w.db")


# ---- the warehouse at run time ----------------------------------------------------------------
def test_a_warehouse_that_cannot_be_reached_fails_once_naming_the_variable(tmp_path):
    db = tmp_path / "gone" / "w.db"
    warehouse = Warehouse(url=f"sqlite:///{db}")
    assert warehouse.count_rows("anything") == 0
    warehouse.engine.dispose()
    shutil.rmtree(db.parent)
    db.mkdir(parents=True)  # where the file was: SQLite cannot open it any more
    with pytest.raises(WarehouseError) as err:
        warehouse.count_rows("anything")
    assert str(err.value) == f"cannot connect to the warehouse sqlite:///{db} (WAREHOUSE_URL): unable to open database file"


# ---- through the command line -----------------------------------------------------------------
def test_the_quickstart_prints_a_bad_setting_and_runs_nothing(tmp_path, monkeypatch, capsys):
    from orchestration_assets import quickstart

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INBOX_DIR", str(a_file))
    assert quickstart.main(["--family", FAMILY]) == 2
    err = capsys.readouterr().err
    assert err == f"the configuration is invalid:\nenvironment: INBOX_DIR: {a_file} is a file, not a folder\n"


def test_dg_check_defs_rejects_bad_settings_naming_them_without_a_traceback(tmp_path):
    project = tmp_path / "proj"
    shutil.copytree(DEFS / FAMILY, user_project(project) / FAMILY)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "DATA_DIR": str(tmp_path / "data"),
           "WAREHOUSE_URL": "postgresq://ops:s3cret@db.internal/warehouse", "OUTBOX_DIR": str(a_file)}
    out = subprocess.run([str(REPO / ".venv" / "bin" / "dg"), "check", "defs"], cwd=project, capture_output=True,
                         text=True, timeout=240, env=env)
    combined = out.stdout + out.stderr
    assert out.returncode != 0
    assert "environment: WAREHOUSE_URL: postgresq://ops:***@db.internal/warehouse: unknown database " \
           "'postgresq'" in combined, combined[-3000:]
    assert f"environment: OUTBOX_DIR: {a_file} is a file, not a folder" in combined
    assert "s3cret" not in combined and "Traceback (most recent call last)" not in combined

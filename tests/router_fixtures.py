"""Shared helpers of the router tests: a fake local provider, records, catalogs and sessions against the test server."""

from pathlib import Path

import pytest
import yaml

from orchestration_assets.family import Family
from resources.providers.base import Item, ModelProvider, TaskResult
from resources.providers.definition import TaskDefinition
from resources.router import ModelRouter
from resources.router.routes import Budget, TaskRoute
from resources.warehouse import Warehouse
from tests.openai_server import OpenAICompatServer

SECRET = "sk-test-DISTINCTIVE-7f3a9c1e5b"
FAMILY_DIR = Path(__file__).resolve().parent.parent / "orchestration_assets" / "defs" / "support_triage"
UNLIMITED = Budget()

TEXTS = [
    ("Refund for double charge", "I was charged twice for my subscription, please refund the second payment."),
    ("Cannot log in", "I reset my password three times and still cannot log in to my account."),
    ("Where is my package", "My shipping was supposed to arrive last week; the tracking has not moved."),
    ("App crashes on start", "Since the update the app shows a technical issue and crashes every time."),
    ("Invoice address", "Please change the billing address on my last invoice to our new office."),
    ("Question about plans", "How do I add more seats to the team plan? Just a question."),
    ("Account hacked?", "I got a phishing email; a security problem, logins from another country."),
    ("Delete my data", "Under GDPR, privacy law, please delete my data and confirm when done."),
    ("Hello", "Something is off, can you look?"),
]


class FakeLocal(ModelProvider):
    """A deterministic local provider: the last label, confidence from ``fields['local_confidence']``."""

    name = "fake-local"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, list[str]]] = []

    def supports(self, task: TaskDefinition) -> bool:
        return True

    def run(self, task: TaskDefinition, items) -> list[TaskResult]:
        self.calls.append((task.name, [i.id for i in items]))
        if self.fail:
            raise RuntimeError(f"model file missing (key {SECRET})")
        return [self._answer(task, item) for item in items]

    def _answer(self, task: TaskDefinition, item: Item) -> TaskResult:
        conf = float(item.fields.get("local_confidence", 0.9))
        confidence = conf if task.has_confidence else None
        output = {
            "classify": lambda: {"label": task.labels[-1], "confidence": conf, "probabilities": {}, "reasons": []},
            "extract": lambda: {name: None for name in task.spec.fields},
            "sentiment": lambda: {"label": "neutral", "score": 0.0},
            "summarize": lambda: {"summary": f"local summary of {item.id}"},
            "draft": lambda: {"text": f"local draft for {item.id}", "cited_ids": []},
            "flag": lambda: {"flags": []},
        }[task.type]()
        return TaskResult(record_id=item.id, task=task.name, output=output, confidence=confidence, provider=self.name,
                          model_id="fake-local-1", model_version="1", prompt_hash="local", input_hash=item.input_hash)


def make_items(n: int, prefix: str = "T", confidences: list[float] | None = None) -> list[Item]:
    out = []
    for i in range(n):
        subject, body = TEXTS[i % len(TEXTS)]
        body = f"{body} Reach me at jane.doe{i}@example.com or +1 415 555 01{i % 100:02d}."
        fields = {"subject": subject, "body": body, "channel": "email"}
        if confidences is not None:
            fields["local_confidence"] = confidences[i % len(confidences)]
        out.append(Item(id=f"{prefix}-{i:04d}", text=f"{subject}\n{body}", fields=fields))
    return out


@pytest.fixture(scope="module")
def family() -> Family:
    return Family.load(FAMILY_DIR)


@pytest.fixture
def local() -> FakeLocal:
    return FakeLocal()


@pytest.fixture
def server():
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")


def endpoint(url: str, **overrides) -> dict:
    cfg = {"base_url": url, "timeout_s": 2.0, "max_attempts": 3,
           "backoff": {"initial_s": 0.01, "max_s": 0.05, "jitter_s": 0.01},
           "cooldown": {"after_failures": 1000, "seconds": 60}}
    cfg.update(overrides)
    return cfg


def catalog(url: str, *, endpoint_overrides: dict | None = None, **extra) -> dict:
    cfg = {
        "endpoints": {"testllm": endpoint(url, **(endpoint_overrides or {}))},
        "models": {"small": {"endpoint": "testllm", "model": "test-small", "params": {"temperature": 0, "max_tokens": 100},
                             "price": {"input_per_1m": 1.0, "output_per_1m": 4.0}}},
    }
    cfg.update(extra)
    return cfg


def router_for(tmp_path: Path, config: dict, api_key: str | None = SECRET, name: str = "models.yaml") -> ModelRouter:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return ModelRouter(config_path=str(path), api_key=api_key)


def routed(*tasks: str, **route) -> dict[str, TaskRoute]:
    return {t: TaskRoute(**(route or {"provider": "small"})) for t in tasks}


def session_for(router: ModelRouter, local: ModelProvider, routes: dict, budget: Budget = UNLIMITED, **kw):
    return router.session(family=kw.pop("family", "support_triage"), routes=routes, budget=budget, local=local, **kw)


def budget_catalog(url: str, per_call: float) -> dict:
    # price only the output and report completion_tokens = max_tokens, so each call costs exactly `per_call`
    config = catalog(url, cache={"enabled": False})
    config["models"]["small"]["price"] = {"input_per_1m": 0.0, "output_per_1m": per_call * 1e6 / 100}
    return config

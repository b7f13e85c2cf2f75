"""An endpoint's rpm holds for the whole deployment: two processes share one window (warehouse or Redis)."""

import threading
import time

import pytest

from resources.configuration import ConfigError
from resources.router.catalog import parse_catalog
from resources.router.rates import Window, shared_backend
from tests.openai_server import OpenAICompatServer
from tests.redis_server import redis_url  # noqa: F401 - the session fixture
from tests.router_fixtures import catalog, router_for
from tests.router_race import Racer, race
from tests.router_race import racer  # noqa: F401 - the module fixture

RPM = 600  # enforced as at most 10 requests in any second
ITEMS = 20  # per process: 40 requests need at least 3 s together, 1 s each alone
# a process's first burst reaches the server up to ~1 s after the limiter let it go (new connections
# on a busy machine): the assertions allow one window of that, and still fail for per-process limits
SLACK_S = 1.0


def most_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times))


def race_rpm(racer: Racer, tmp_path, rate_limits: dict, redis: str | None = None) -> OpenAICompatServer:
    with OpenAICompatServer() as srv:
        router_for(tmp_path, catalog(srv.url, endpoint_overrides={"rpm": RPM}, cache={"enabled": False},
                                     rate_limits=rate_limits))
        kw = dict(catalog=str(tmp_path / "models.yaml"), warehouse=f"sqlite:///{tmp_path / 'wh.db'}", items=ITEMS,
                  start_at=time.time() + 0.3, redis_url=redis)
        racer.send(prefix="A", **kw)
        mine: dict = {}
        worker = threading.Thread(target=lambda: mine.update(race(prefix="B", **kw)))
        worker.start()
        worker.join()
        theirs = racer.result()
    assert theirs["calls"] == mine["calls"] == ITEMS
    return srv


def assert_window_held(srv: OpenAICompatServer) -> None:
    times = [r.at for r in srv.chat_requests if r.record_id]  # (not the racers' warm-up requests)
    assert len(times) == 2 * ITEMS
    assert most_in_any_second(times) <= 2 * RPM // 60
    assert max(times) - min(times) >= 2 * ITEMS / (RPM / 60) - 1 - SLACK_S  # what the shared window requires


def test_two_processes_share_an_endpoints_rpm_through_the_warehouse(racer, tmp_path):
    assert_window_held(race_rpm(racer, tmp_path, {"shared": "warehouse"}))


@pytest.mark.redis
def test_two_processes_share_an_endpoints_rpm_through_redis(racer, tmp_path, redis_url, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_REDIS_URL", redis_url)
    assert_window_held(race_rpm(racer, tmp_path, {"shared": "redis"}, redis=redis_url))


def test_per_process_limits_alone_let_two_processes_exceed_the_rpm(racer, tmp_path):
    """The baseline the shared window replaces (and proof the two tests above can fail)."""
    srv = race_rpm(racer, tmp_path, {"shared": "process"})
    times = [r.at for r in srv.chat_requests if r.record_id]
    assert max(times) - min(times) < 2 * ITEMS / (RPM / 60) - 1 - SLACK_S


def test_windows_and_the_redis_setting(monkeypatch):
    assert Window.per_minute(600) == Window(10, 1) and Window.per_minute(90) == Window(3, 2)
    assert Window.per_minute(7) == Window(7, 60)
    config = parse_catalog({"rate_limits": {"shared": "redis"}}, "models.yaml")
    monkeypatch.delenv("RATE_LIMIT_REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match="environment: RATE_LIMIT_REDIS_URL: not set"):
        shared_backend(config, None)
    monkeypatch.setenv("RATE_LIMIT_REDIS_URL", "http://user:hunter2@cache:6379")
    with pytest.raises(ConfigError, match="not a Redis URL") as err:
        shared_backend(config, None)
    assert "hunter2" not in str(err.value)

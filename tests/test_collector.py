"""The run process's garbage collector: tuned when the platform's definitions load, an application's choice kept."""

import gc

import pytest

from orchestration_assets.platform import platform_defs
from resources.collector import THRESHOLDS


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.parametrize("start, expected", [
    ((700, 10, 10), THRESHOLDS),  # CPython's defaults: full collections every few thousand records
    ((50_000, 20, 200), (50_000, 20, 200)),  # raised by the application: kept
    ((0, 10, 10), (0, 10, 10)),  # collection turned off: kept off
])
def test_loading_the_platform_sets_the_thresholds_unless_the_process_chose_its_own(thresholds, start, expected):
    gc.set_threshold(*start)
    platform_defs({})
    assert gc.get_threshold() == expected

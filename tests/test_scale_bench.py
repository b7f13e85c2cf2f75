"""bench/scale.py's memory figures: a child process is measured by its own resident set."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import scale  # noqa: E402


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_child_forked_from_a_large_process_is_sampled_at_its_own_small_size():
    ballast = bytearray(200 * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # resident, not only reserved
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert child.pid in scale.child_pids()
        own, theirs = scale.rss_now_mb(), scale.rss_now_mb(child.pid)
        assert own > 200 and 0 < theirs < 50  # a forked child's maxrss would say about `own`
    finally:
        child.kill()
        child.wait()
    assert scale.rss_now_mb(child.pid) == 0.0  # ended: nothing to count
    del ballast

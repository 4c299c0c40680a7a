"""A short run of the load benchmark (bench/bench_load.py) on the real suite: 5,000 cache calls
from 64 callers and 1,000 gateway requests at 64 concurrency, zero errors, and no process's RSS
growing beyond the bound the benchmark states. `make bench BENCH=load` runs the full 100,000 /
10,000."""

from __future__ import annotations

import pytest

from bench.bench_load import RSS_BOUND_MIB, run_load

pytestmark = pytest.mark.slow


def test_the_suite_under_load_answers_every_call_and_does_not_grow() -> None:
    result = run_load(5000, 1000)
    assert result["cache_errors"] == 0
    assert result["gateway_errors"] == 0
    before: dict[str, float] = result["before"]  # type: ignore[assignment]
    after: dict[str, float] = result["after"]  # type: ignore[assignment]
    assert set(before) == {"cache", "processing", "batch", "monitor", "gateway"}
    for name, size in before.items():
        assert after[name] - size < RSS_BOUND_MIB, f"{name}: {size:.1f} -> {after[name]:.1f} MiB"

"""Readings become rates and percentages; the first reading is only a baseline."""

from __future__ import annotations

import pytest

from services.monitor.sampling import ProcessReading, RateSampler
from tests.support.monitor import reading


def _by_key(samples: list) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[type-arg]
    return {(s.name, s.labels): s.value for s in samples}


def test_first_reading_has_levels_but_no_rates() -> None:
    sampler = RateSampler()
    first = _by_key(sampler.samples(reading(memory_percent=42.0), 100.0))
    assert first[("system.memory.percent", ())] == 42.0
    assert ("system.cpu.percent", ()) not in first
    assert ("system.disk.read.rate", ()) not in first


def test_cpu_percent_per_core_and_overall_and_byte_rates() -> None:
    sampler = RateSampler()
    sampler.samples(reading(busy=(10, 20), total=(100, 100), disk=(1000, 0), net=(0, 500)), 100.0)
    later = reading(busy=(60, 20), total=(200, 200), disk=(11_000, 4_000), net=(2_000, 10_500))
    got = _by_key(sampler.samples(later, 110.0))
    assert got[("system.cpu.core.percent", (("core", "0"),))] == 50.0
    assert got[("system.cpu.core.percent", (("core", "1"),))] == 0.0
    assert got[("system.cpu.percent", ())] == 25.0
    assert got[("system.disk.read.rate", ())] == 1000.0
    assert got[("system.disk.write.rate", ())] == 400.0
    assert got[("system.network.send.rate", ())] == 200.0
    assert got[("system.network.receive.rate", ())] == 1000.0


def test_a_counter_that_goes_down_gives_zero_not_a_negative_rate() -> None:
    sampler = RateSampler()
    sampler.samples(reading(disk=(5000, 5000)), 0.0)
    got = _by_key(sampler.samples(reading(disk=(100, 6000)), 5.0))
    assert got[("system.disk.read.rate", ())] == 0.0
    assert got[("system.disk.write.rate", ())] == 200.0


def test_process_cpu_rss_and_fds_and_a_restart_is_not_a_rate() -> None:
    sampler = RateSampler()
    sampler.samples(reading(processes=(ProcessReading("cache", 10, 1000, 7, 2.0),)), 0.0)
    got = _by_key(sampler.samples(reading(processes=(ProcessReading("cache", 10, 2000, 9, 3.0),)), 4.0))
    labels = (("process", "cache"),)
    assert got[("process.rss", labels)] == 2000.0
    assert got[("process.open_fds", labels)] == 9.0
    assert got[("process.cpu.percent", labels)] == pytest.approx(25.0)
    restarted = _by_key(sampler.samples(reading(processes=(ProcessReading("cache", 11, 500, 5, 9.0),)), 8.0))
    assert ("process.cpu.percent", labels) not in restarted
    assert restarted[("process.rss", labels)] == 500.0

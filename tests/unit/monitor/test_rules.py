"""The rules file: YAML or JSON, checked at start; every mistake names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.monitor.alerts import Level
from services.monitor.config import MonitorConfig
from services.monitor.rules import DEFAULT_RULES, RulesError, load_rules
from services.runtime.config import ConfigError, Env

GOOD = """\
rules:
  - name: slow_cache
    metric: rpc.server.latency.p95
    labels: {service: cache}
    thresholds: {warning: 5, critical: 20}
    hold: 2m
    hysteresis: 1.5
    description: cache calls are slow
"""


def test_defaults_are_the_original_thresholds() -> None:
    by_name = {r.name: r for r in DEFAULT_RULES}
    assert by_name["cpu_usage"].thresholds == {Level.WARNING: 80, Level.CRITICAL: 90, Level.EMERGENCY: 95}
    assert by_name["memory_usage"].thresholds == {Level.WARNING: 75, Level.CRITICAL: 85, Level.EMERGENCY: 95}
    assert by_name["media_processing_time"].thresholds == {
        Level.WARNING: 30,
        Level.CRITICAL: 60,
        Level.EMERGENCY: 120,
    }
    assert by_name["error_rate"].thresholds == {Level.WARNING: 5, Level.CRITICAL: 15, Level.EMERGENCY: 25}


def test_a_yaml_file_replaces_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    (rule,) = load_rules(path)
    assert rule.name == "slow_cache"
    assert rule.labels == (("service", "cache"),)
    assert rule.thresholds == {Level.WARNING: 5.0, Level.CRITICAL: 20.0}
    assert (rule.hold, rule.hysteresis) == (120.0, 1.5)


def test_a_json_file_can_keep_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        '{"include_defaults": true, "rules": [{"name": "cpu_usage", "metric": "system.cpu.percent",'
        ' "thresholds": {"info": 50, "warning": 60}}]}'
    )
    rules = {r.name: r for r in load_rules(path)}
    assert set(rules) == {r.name for r in DEFAULT_RULES}
    assert rules["cpu_usage"].thresholds == {Level.INFO: 50, Level.WARNING: 60}


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "the file is empty"),
        ("rules:\n  - name: a\n    metric: m\n    thresholds: {warning: [1}\n", 4, "not valid YAML"),
        (
            "rules:\n  - name: a\n    metric: m\n    thresholds: {warning: high}\n",
            4,
            "thresholds.warning must be a number, not 'high'",
        ),
        (
            "rules:\n  - name: a\n    metric: m\n    thresholds:\n      warning: 90\n      critical: 80\n",
            6,
            "must increase",
        ),
        ("rules:\n  - name: a\n    metric: m\n    thresholds: {severe: 1}\n", 4, "unknown level 'severe'"),
        ("rules:\n  - name: a\n    metric: m\n    thresholds: {}\n", 4, "at least one level"),
        ("rules:\n  - name: a\n    metric: m\n", 2, "a rule needs 'thresholds'"),
        (
            "rules:\n  - name: a\n    metric: m\n    thresholds: {info: 1}\n    hold: soon\n",
            5,
            "hold must be a duration",
        ),
        (
            "rules:\n  - name: a\n    metric: m\n    thresholds: {info: 1}\n    hysteresis: -1\n",
            5,
            "must not be negative",
        ),
        (
            "rules:\n  - name: a\n    metric: m\n    thresholds: {info: 1}\n    colour: red\n",
            5,
            "unknown key 'colour'",
        ),
        (
            "rules:\n  - {name: a, metric: m, thresholds: {info: 1}}\n"
            "  - {name: a, metric: m, thresholds: {info: 2}}\n",
            3,
            "two rules are named 'a'",
        ),
        ("rule:\n  - name: a\n", 1, "unknown key 'rule'"),
        ("rules: {name: a}\n", 1, "'rules' must be a list"),
        ("rules:\n  - name: 'has space'\n    metric: m\n    thresholds: {info: 1}\n", 2, "must be a word"),
        ("rules:\n  - name: a\n    metric: m\n    thresholds: {info: .nan}\n", 4, "must be a number"),
        (
            "rules:\n  - name: a\n    metric: m\n    metric: n\n    thresholds: {info: 1}\n",
            4,
            "appears twice",
        ),
    ],
)
def test_mistakes_are_refused_naming_the_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert caught.value.line == line, str(caught.value)
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}, line {line}: ")


def test_bad_json_syntax_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{\n  "rules": [\n    {"name": "a",}\n  ]\n}\n')
    with pytest.raises(RulesError, match=r"line 3: not valid JSON"):
        load_rules(path)


def test_the_configuration_refuses_a_bad_or_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: a\n")
    with pytest.raises(ConfigError) as caught:
        MonitorConfig.from_env(Env({"MONITOR_RULES_FILE": str(path)}))
    assert caught.value.variable == "MONITOR_RULES_FILE"
    assert f"{path}, line 2: a rule needs 'metric'" in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read the file"):
        MonitorConfig.from_env(Env({"MONITOR_RULES_FILE": str(tmp_path / "missing.yaml")}))

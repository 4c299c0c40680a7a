"""Alert rules: the defaults (thresholds of the original system) and the rules file.

The file is YAML or JSON (JSON is read as YAML, after a JSON syntax check for its clearer messages)::

    include_defaults: true        # keep the default rules (a rule of the same name replaces one)
    rules:
      - name: cpu_usage
        metric: system.cpu.percent
        labels: {}                # only series with these labels (optional)
        thresholds: {warning: 80, critical: 90, emergency: 95}   # info too; at least one
        hold: 30s                 # a breach must last this long (seconds or "30s", "2m")
        hysteresis: 5             # resolve / de-escalate only below threshold - 5
        description: CPU busy across all cores

Any mistake is reported as ``<file>, line N: <what is wrong>``, and the monitor refuses to start.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from services.monitor.alerts import Level, Rule
from services.runtime.config import parse_duration

__all__ = ["DEFAULT_RULES", "RulesError", "load_rules"]

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "cpu_usage",
        "system.cpu.percent",
        {Level.WARNING: 80, Level.CRITICAL: 90, Level.EMERGENCY: 95},
        hold=30,
        hysteresis=5,
        description="CPU busy across all cores (%)",
    ),
    Rule(
        "memory_usage",
        "system.memory.percent",
        {Level.WARNING: 75, Level.CRITICAL: 85, Level.EMERGENCY: 95},
        hold=30,
        hysteresis=3,
        description="memory in use (%)",
    ),
    Rule(
        "media_processing_time",
        "processing.duration.p95",
        {Level.WARNING: 30, Level.CRITICAL: 60, Level.EMERGENCY: 120},
        hold=60,
        hysteresis=5,
        description="95th percentile of media operation time (s), per service and operation",
    ),
    Rule(
        "error_rate",
        "rpc.server.error_rate",
        {Level.WARNING: 5, Level.CRITICAL: 15, Level.EMERGENCY: 25},
        hold=60,
        hysteresis=2,
        description="calls failing with a server error (%), per service and method",
    ),
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_RULE_KEYS = {"name", "metric", "labels", "thresholds", "hold", "hysteresis", "description"}
_LEVELS = {level.name.lower(): level for level in Level if level != Level.NONE}


class RulesError(ValueError):
    """The rules file is wrong; the message names the file and the line."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}, line {line}: {problem}")


def load_rules(path: Path) -> tuple[Rule, ...]:
    """Read and check a rules file; RulesError at the first mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(path, 0, f"cannot read the file ({error})") from None
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            raise RulesError(
                path, error.lineno, f"not valid JSON: {error.msg} (column {error.colno})"
            ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise RulesError(path, line, f"not valid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise RulesError(path, 0, f"not valid YAML: {error}") from None
    return _Reader(path).document(root)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: Node, problem: str) -> RulesError:
        return RulesError(self.path, _line(node), problem)

    def pairs(self, node: Node, what: str) -> Iterator[tuple[str, ScalarNode, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value)")
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                raise self.fail(key, f"keys of {what} must be plain words")
            if key.value in seen:
                raise self.fail(key, f"{key.value!r} appears twice in {what}")
            seen.add(key.value)
            yield key.value, key, value

    def text(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag.endswith((":map", ":seq")):
            raise self.fail(node, f"{what} must be text")
        return str(node.value)

    def number(self, node: Node, what: str) -> float:
        if isinstance(node, ScalarNode) and not node.tag.endswith((":bool", ":null")):
            try:
                value = float(node.value)
            except ValueError:
                pass
            else:
                if math.isfinite(value):
                    return value
        shown = node.value if isinstance(node, ScalarNode) else "a " + type(node).__name__
        raise self.fail(node, f"{what} must be a number, not {shown!r}")

    def document(self, root: Node | None) -> tuple[Rule, ...]:
        if root is None:
            raise RulesError(self.path, 1, "the file is empty; it needs a 'rules:' list")
        include_defaults = False
        rules_node: Node | None = None
        for key, key_node, value in self.pairs(root, "the file"):
            if key == "rules":
                rules_node = value
            elif key == "include_defaults":
                if not isinstance(value, ScalarNode) or value.value.lower() not in ("true", "false"):
                    raise self.fail(value, "include_defaults must be true or false")
                include_defaults = value.value.lower() == "true"
            else:
                raise self.fail(key_node, f"unknown key {key!r}; the file has 'rules' and 'include_defaults'")
        if rules_node is None:
            raise self.fail(root, "the file has no 'rules:' list")
        if not isinstance(rules_node, SequenceNode):
            raise self.fail(rules_node, "'rules' must be a list of rules")
        rules: dict[str, Rule] = {r.name: r for r in DEFAULT_RULES} if include_defaults else {}
        mine: set[str] = set()
        for node in rules_node.value:
            rule = self.rule(node)
            if rule.name in mine:
                raise self.fail(node, f"two rules are named {rule.name!r}")
            mine.add(rule.name)
            rules[rule.name] = rule
        return tuple(rules.values())

    def rule(self, node: Node) -> Rule:
        fields: dict[str, tuple[ScalarNode, Node]] = {}
        for key, key_node, value in self.pairs(node, "a rule"):
            if key not in _RULE_KEYS:
                raise self.fail(
                    key_node, f"unknown key {key!r} in a rule; known: {', '.join(sorted(_RULE_KEYS))}"
                )
            fields[key] = (key_node, value)
        for required in ("name", "metric", "thresholds"):
            if required not in fields:
                raise self.fail(node, f"a rule needs {required!r}")
        name = self.text(fields["name"][1], "name")
        if not _NAME.match(name):
            raise self.fail(fields["name"][1], f"name {name!r} must be a word of letters, digits, _ . -")
        metric = self.text(fields["metric"][1], "metric")
        if not _NAME.match(metric):
            raise self.fail(fields["metric"][1], f"metric {metric!r} is not a metric name")
        thresholds = self.thresholds(fields["thresholds"][1])
        hold = 0.0
        if "hold" in fields:
            hold_node = fields["hold"][1]
            try:
                hold = parse_duration(self.text(hold_node, "hold"))
            except ValueError:
                raise self.fail(hold_node, 'hold must be a duration such as 30, "30s" or "2m"') from None
            if hold > 86400:
                raise self.fail(hold_node, "hold must be at most 24h")
        hysteresis = self.number(fields["hysteresis"][1], "hysteresis") if "hysteresis" in fields else 0.0
        if hysteresis < 0:
            raise self.fail(fields["hysteresis"][1], "hysteresis must not be negative")
        labels: dict[str, str] = {}
        if "labels" in fields:
            for key, _, value in self.pairs(fields["labels"][1], "labels"):
                labels[key] = self.text(value, f"label {key}")
        description = self.text(fields["description"][1], "description") if "description" in fields else ""
        return Rule(name, metric, thresholds, hold, hysteresis, tuple(sorted(labels.items())), description)

    def thresholds(self, node: Node) -> dict[Level, float]:
        found: dict[Level, tuple[float, Node]] = {}
        for key, key_node, value in self.pairs(node, "thresholds"):
            level = _LEVELS.get(key.lower())
            if level is None:
                raise self.fail(
                    key_node, f"unknown level {key!r}; levels: info, warning, critical, emergency"
                )
            found[level] = (self.number(value, f"thresholds.{key}"), value)
        if not found:
            raise self.fail(node, "thresholds needs at least one level (info, warning, critical, emergency)")
        ordered = sorted(found.items())
        for (low, (low_value, _)), (high, (high_value, high_node)) in itertools.pairwise(ordered):
            if high_value <= low_value:
                raise self.fail(
                    high_node,
                    f"thresholds must increase with the level: {high.name.lower()} ({high_value:g}) "
                    f"is not above {low.name.lower()} ({low_value:g})",
                )
        return {level: value for level, (value, _) in ordered}

"""The supply-chain check's verdicts: a vulnerability fails lint; an unreachable database skips it,
saying so; a clean audit passes."""

from __future__ import annotations

import json

from tools.audit import judge


def _report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails_naming_package_advisory_and_fix() -> None:
    verdict = judge(
        1,
        _report(
            {"name": "urllib3", "version": "1.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["2.0.7"]}]},
            {"name": "redis", "version": "6.0", "vulns": []},
        ),
        "",
    )
    assert verdict.kind == "vulnerable"
    assert verdict.lines == ["urllib3 1.0: GHSA-xxxx (fixed in 2.0.7)"]


def test_a_clean_audit_passes_and_counts() -> None:
    verdict = judge(
        0,
        _report(
            {"name": "redis", "version": "6.0", "vulns": []},
            {"name": "local", "version": "0.1", "skip_reason": "Dependency not found on PyPI"},
        ),
        "",
    )
    assert verdict.kind == "ok"
    assert verdict.lines == ["1 locked packages audited, no known vulnerability (1 could not be looked up)"]


def test_no_network_or_no_lookup_is_skipped_with_the_reason() -> None:
    offline = judge(1, "", "requests.exceptions.ConnectionError: Max retries exceeded with url: /pypi/x/json")
    assert offline.kind == "skipped"
    assert "could not be reached" in offline.lines[0]
    unreachable = judge(
        0, _report({"name": "redis", "version": "6.0", "skip_reason": "Dependency not found on PyPI"}), ""
    )
    assert unreachable.kind == "skipped"
    assert "none of 1 packages could be looked up" in unreachable.lines[0]

"""``make lint``'s supply-chain check: pip-audit over the locked dependencies, offline-tolerant.

Every pin of ``requirements/lock.txt`` is looked up in PyPI's vulnerability data (pip-audit's
default service). A known vulnerability fails the check, naming the package, the advisory and the
fixed versions. When the database cannot be reached (no network, or an index that does not serve
PyPI's JSON API, so that no package can be looked up) the check is skipped with a message saying
so: lint must not fail for want of a network, and must not pretend it audited anything.

Usage: python tools/audit.py [--lock requirements/lock.txt] [--ignore-vuln ID ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["Verdict", "judge", "main"]

# Each vulnerability ignored here needs a reason beside it, and a date to look again.
IGNORED: dict[str, str] = {}
_UNREACHABLE = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "timed out",
    "Failed to establish a new connection",
)


class Verdict:
    """What the audit found: ok, vulnerable (with lines to print) or skipped (with the reason)."""

    def __init__(self, kind: str, lines: list[str]) -> None:
        self.kind = kind
        self.lines = lines


def judge(returncode: int, stdout: str, stderr: str) -> Verdict:
    """Read pip-audit's JSON report (and its exit code and error output) into a verdict."""
    try:
        report: dict[str, Any] = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        report = {}
    dependencies = report.get("dependencies", [])
    if not dependencies:
        reason = next((s for s in _UNREACHABLE if s in stderr), "")
        if reason or returncode != 0:
            last = stderr.strip().splitlines()[-1:] or ["no report"]
            return Verdict("skipped", [f"the vulnerability database could not be reached ({last[0][:200]})"])
        return Verdict("skipped", ["pip-audit returned no report"])
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        return Verdict(
            "skipped",
            [
                f"none of {len(dependencies)} packages could be looked up "
                f"(first: {dependencies[0].get('skip_reason', '')[:120]}): "
                "the vulnerability database is not reachable from this index"
            ],
        )
    found = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {_fixes(v)})"
        for d in audited
        for v in d.get("vulns", [])
        if v["id"] not in IGNORED
    ]
    if found:
        return Verdict("vulnerable", found)
    skipped = len(dependencies) - len(audited)
    note = f" ({skipped} could not be looked up)" if skipped else ""
    return Verdict("ok", [f"{len(audited)} locked packages audited, no known vulnerability{note}"])


def _fixes(vuln: dict[str, Any]) -> str:
    return ", ".join(vuln.get("fix_versions", [])) or "no release yet"


def main(argv: list[str] | None = None) -> int:
    """Run pip-audit and print the verdict; exit 1 only for a known vulnerability."""
    parser = argparse.ArgumentParser(prog="tools/audit.py", description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=Path("requirements/lock.txt"))
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    command = [
        sys.executable, "-m", "pip_audit", "-r", str(args.lock), "--no-deps", "--disable-pip",
        "--progress-spinner", "off", "--format", "json",
        *(part for vuln in IGNORED for part in ("--ignore-vuln", vuln)),
    ]  # fmt: skip
    try:
        # The command is ours (this interpreter's pip-audit on our lock file), not user input.
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        print(
            f"pip-audit skipped: no answer within {args.timeout:g}s",
            "(the vulnerability database is unreachable)",
        )
        return 0
    verdict = judge(done.returncode, done.stdout, done.stderr)
    prefix = {"ok": "pip-audit:", "skipped": "pip-audit skipped:", "vulnerable": "pip-audit: vulnerable:"}
    for line in verdict.lines:
        print(prefix[verdict.kind], line)
    return 1 if verdict.kind == "vulnerable" else 0


if __name__ == "__main__":
    sys.exit(main())

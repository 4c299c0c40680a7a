"""Run the benchmarks under bench/ and print one table (``make bench``, ``make bench BENCH=cache``).

Every module ``bench/bench_<name>.py`` has ``run() -> list[Row]``; each row carries our figure, the
anchor measured in the same run, their ratio and the goal. Rows are also written as JSON lines
to .bench/latest.jsonl.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

from rich.console import Console

import bench
from bench.report import Row, print_table, write_jsonl

OUTPUT = Path(".bench/latest.jsonl")


def available() -> list[str]:
    """Names of the benchmarks (bench_<name>.py modules)."""
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default)."""
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("only", nargs="*", help=f"benchmarks to run (default: all of {', '.join(names)})")
    args = parser.parse_args(argv)
    chosen = args.only or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(names)}")
    console = Console(width=150)
    rows: list[Row] = []
    for name in chosen:
        started = time.monotonic()
        console.print(f"[bold]bench {name}[/] ...")
        module = importlib.import_module(f"bench.bench_{name}")
        rows.extend(module.run())
        console.print(f"  done in {time.monotonic() - started:.0f}s")
    print_table(rows, console)
    write_jsonl(rows, OUTPUT)
    console.print(f"rows written to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

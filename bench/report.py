"""Rows of the benchmark table, how they print, and the JSON lines file they are saved to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["Row", "print_table", "ratio_row", "write_jsonl"]


@dataclass(frozen=True)
class Row:
    """One figure: ours, the anchor measured in the same run, their ratio, and the goal."""

    name: str
    ours: float
    anchor: float
    ratio: float
    unit: str
    goal: str
    meets: bool | None
    anchor_name: str = ""
    note: str = ""


def ratio_row(
    name: str,
    ours: float,
    anchor: float,
    unit: str,
    *,
    goal_ratio: float | None,
    higher_is_better: bool = True,
    anchor_name: str = "",
    note: str = "",
) -> Row:
    """A row whose goal is a ratio to the anchor (ours/anchor >= goal, or <= goal when lower is better)."""
    ratio = ours / anchor if anchor else float("inf")
    if goal_ratio is None:
        return Row(name, ours, anchor, ratio, unit, "-", None, anchor_name, note)
    meets = ratio >= goal_ratio if higher_is_better else ratio <= goal_ratio
    goal = f"{'>=' if higher_is_better else '<='} {goal_ratio:g}x"
    return Row(name, ours, anchor, ratio, unit, goal, meets, anchor_name, note)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def print_table(rows: Sequence[Row], console: Console | None = None) -> None:
    """The table `make bench` prints."""
    table = Table(title="mediasuite benchmarks", title_justify="left")
    for column, justify in (
        ("figure", "left"),
        ("ours", "right"),
        ("anchor", "right"),
        ("anchor is", "left"),
        ("ratio", "right"),
        ("unit", "left"),
        ("goal", "left"),
        ("meets", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        verdict = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[row.meets]
        table.add_row(
            row.name,
            _fmt(row.ours),
            _fmt(row.anchor),
            row.anchor_name,
            f"{row.ratio:.2f}x",
            row.unit,
            row.goal,
            verdict,
        )
    (console or Console()).print(table)
    for row in rows:
        if row.note:
            (console or Console()).print(f"  {row.name}: {row.note}")


def write_jsonl(rows: Sequence[Row], path: Path) -> None:
    """One JSON object per row with the keys name, ours, anchor, ratio, unit, goal, meets (and more)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(asdict(row)) + "\n")

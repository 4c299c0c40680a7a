"""Documentation that is executed: code blocks read from Markdown, run in order, outputs compared.

A fenced code block runs unless the line before its fence is a directive comment saying otherwise:

    <!-- doc: start-suite -->      the command that starts the suite (`make run`): the walkthrough
                                   starts it in the background and waits for its banner
    <!-- doc: output -->           what the block before it printed (all its commands), checked
    <!-- doc: check NAME -->       a file the reader writes, checked by NAME's checker (a test
                                   registers it: alert rules loaded by the monitor's loader ...)
    <!-- doc: kubectl -->          commands for a cluster: each is checked against the rendered
                                   manifests (namespace, kind and name exist; -k paths render)
    <!-- doc: illustrative REASON --> not run, with the reason (keep these few)

Blocks in `sh` run line by line in bash (a line ending in a backslash continues); `export`,
`source`, `.` and `cd` lines carry over to the next commands, as in a terminal. `python` blocks run
as a script with the suite's virtualenv.

Output matching: each line of the expected block must match the next line of the actual output,
from the first line to the last; `...` inside a line matches any text, and a line that is only
`...` matches any number of lines. Runs of spaces count as one (tables are padded to the terminal).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "blocks", "commands", "matches", "section"]

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doc:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block and how the document says to treat it."""

    lang: str
    text: str
    kind: str  # run, start-suite, output, check, kubectl, illustrative
    arg: str
    line: int  # 1-based line of the opening fence

    def where(self, path: Path) -> str:
        """``file:line`` for messages."""
        return f"{path.name}:{self.line}"


def section(text: str, start: str, end: str) -> str:
    """The text between two marker lines (exclusive)."""
    begin = text.index(start)
    return text[text.index("\n", begin) + 1 : text.index(end, begin)]


def blocks(text: str, first_line: int = 1) -> list[Block]:
    """Every fenced block of a Markdown text, in order, with its directive."""
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent = len(fence.group("indent"))
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            body.append(lines[end][indent:])
            end += 1
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        directive = _DIRECTIVE.match(previous)
        kind, arg = (directive.group("kind"), directive.group("arg")) if directive else ("run", "")
        found.append(Block(fence.group("lang"), "\n".join(body), kind, arg, first_line + index))
        index = end + 1
    return found


def commands(block: Block) -> list[str]:
    """The commands of a shell block: one per line, backslash continuations joined, comments kept."""
    out: list[str] = []
    pending = ""
    for line in block.text.splitlines():
        if not line.strip() and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        out.append((pending + line.strip()).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def _squash(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def _line_matches(pattern: str, actual: str) -> bool:
    # "a ... b" is "a", anything (perhaps nothing), "b": the spaces around "..." are part of it.
    parts = [re.escape(part.strip()) for part in _squash(pattern).split("...")]
    return re.fullmatch(r"\s*.*?\s*".join(parts), _squash(actual)) is not None


def matches(expected: str, actual: str) -> str | None:
    """None when ``actual`` matches the expected block; otherwise what did not match."""
    want = [line for line in expected.splitlines() if line.strip()]
    have = [line for line in actual.splitlines() if line.strip()]

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if _squash(want[i]) == "...":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        return j < len(have) and _line_matches(want[i], have[j]) and match(i + 1, j + 1)

    if match(0, 0):
        return None
    # Say where: the first expected line (not "...") that matches no line of the output at all.
    for line in want:
        if _squash(line) != "..." and not any(_line_matches(line, h) for h in have):
            return f"no output line matches {line.strip()!r}"
    return "the expected lines appear, but not in this order or with other lines between them"

"""The rules of executed documentation (tests/support/docs.py): how outputs are compared, and that
every code block of the quickstart and of docs/ is run, checked, or marked illustrative with a
reason (few of those)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs import blocks, commands, matches

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
KINDS = {"run", "start-suite", "output", "file", "check", "kubectl", "illustrative"}


def test_an_output_block_matches_line_by_line_with_wildcards() -> None:
    printed = "header\n│ cache      │ 127.0.0.1:1 │ SERVING │ 1.2 ms │\nfooter 38 items\n"
    assert matches("header\n│ cache ... │ 127.0.0.1:1 │ SERVING │ ... │\nfooter ... items", printed) is None
    assert matches("...\nfooter 38 items", printed) is None
    assert matches("header\n...", printed) is None
    assert (
        matches("footer 38 items", printed)
        == "the expected lines appear, but not in this order or with other lines between them"
    )
    assert matches("header\n│ cache │ ... │ NOT_SERVING │ ... │\n...", printed) == (
        "no output line matches '│ cache │ ... │ NOT_SERVING │ ... │'"
    )
    assert matches("header\nfooter 38 items", printed) is not None, (
        "a line in between is not skipped silently"
    )
    assert matches("header\n...\n...\nfooter ... items", printed) is None


def test_blocks_carry_their_directive_and_shell_lines_join() -> None:
    text = (
        "intro\n<!-- doc: start-suite -->\n```sh\nmake run\n```\n\n"
        "<!-- doc: output -->\n```text\nok\n```\n"
        "```sh\nexport A=1\ncurl -sS \\\n  http://x\n```\n"
        "<!-- doc: illustrative needs a cluster -->\n```sh\nkubectl get pods\n```\n"
    )
    found = blocks(text)
    assert [(b.kind, b.lang, b.arg) for b in found] == [
        ("start-suite", "sh", ""),
        ("output", "text", ""),
        ("run", "sh", ""),
        ("illustrative", "sh", "needs a cluster"),
    ]
    assert found[0].line == 3
    assert commands(found[2]) == ["export A=1", "curl -sS http://x"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_block_of_a_guide_is_run_or_checked(doc: Path) -> None:
    found = blocks(doc.read_text())
    assert found, doc
    kinds = [b.kind for b in found]
    assert set(kinds) <= KINDS, kinds
    assert kinds.count("illustrative") <= 2, "illustrative blocks stay few"
    assert all(b.arg for b in found if b.kind == "illustrative"), "each says why"
    assert kinds.count("output") >= 1, "some outputs are checked"
    for index, block in enumerate(found):
        if block.kind == "run":
            assert block.lang in ("sh", "bash"), f"{doc.name}:{block.line}: mark a {block.lang} block"
        if block.kind == "output":
            assert index > 0, f"{doc.name}:{block.line}: an output follows a command"
            assert found[index - 1].kind in ("run", "start-suite"), f"{doc.name}:{block.line}"
    assert len(DOCS) == 3

"""The README says what the code does: its configuration table and its two commands."""

from __future__ import annotations

from pathlib import Path

from tools.readme import README, render


def test_configuration_table_matches_the_code() -> None:
    text = README.read_text()
    assert text == render(text), "run `python tools/readme.py` to regenerate the README's configuration table"


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_makefile_lists_the_targets_the_readme_names() -> None:
    makefile = (README.parent / "Makefile").read_text()
    for target in ("setup", "protos", "lint", "test", "run", "bench"):
        assert f"\n{target}:" in makefile
    assert Path(README.parent / "requirements" / "lock.txt").exists()

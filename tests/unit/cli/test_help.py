"""Help that helps: `mediactl --help` lists every command by service with a description and an
example that parses; a mistyped command, subcommand or choice gets the nearest one at every level;
an option of mediactl given after a command says where it belongs."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from services.cli.help import examples, leaf_commands
from services.cli.mediactl import cli
from services.cli.suite import cli as suite_cli

SECTIONS = ("suite:", "cache:", "processing:", "batch:", "monitor:", "gateway:")


def _name(group: click.Group) -> str:
    return "mediasuite" if group is suite_cli else "mediactl"


def _invoke(group: click.Group, argv: list[str], **kwargs: object) -> click.testing.Result:
    return CliRunner().invoke(group, argv, prog_name=_name(group), **kwargs)  # type: ignore[arg-type]


def _help(group: click.Group, *args: str) -> str:
    result = CliRunner().invoke(group, [*args, "--help"], terminal_width=110, prog_name=_name(group))
    assert result.exit_code == 0, result.output
    return result.output


def _leaves() -> list[tuple[tuple[str, ...], click.Command]]:
    with click.Context(cli) as ctx:
        return list(leaf_commands(cli, ctx))


def test_the_root_help_lists_every_command_under_its_service_with_a_description_and_an_example() -> None:
    text = _help(cli)
    listing = text[text.index("Commands by service") :]
    positions = [listing.index(f"\n  {section}") for section in SECTIONS]
    assert positions == sorted(positions), "sections in order"
    leaves = _leaves()
    assert len(leaves) >= 30
    for path, command in leaves:
        name = " ".join(path)
        line = re.search(rf"^    {re.escape(name)} +(\S.*)$", listing, flags=re.M)
        assert line is not None, f"{name} is not listed"
        assert command.get_short_help_str(300).split()[0] in line.group(1)
        example = examples(command)[0]
        assert f"$ {example}" in listing, f"{name}: its example is shown"
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"^  (\w+): ", listing, flags=re.M)]
    for name, section in (("cache stats", "cache"), ("import", "batch"), ("trace show", "suite")):
        position = listing.index(f"    {name} ")
        assert [h for at, h in headings if at < position][-1] == section, name


def _parse(argv: list[str]) -> click.Context:
    """Parse a command line the way mediactl would, without running it."""
    ctx = cli.make_context("mediactl", list(argv), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group):
        args = [*ctx._protected_args, *ctx.args]
        _name, found, rest = command.resolve_command(ctx, args)
        assert found is not None
        command = found
        ctx = command.make_context(_name, rest, parent=ctx)
    return ctx


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in _leaves()])
def test_every_example_names_its_command_and_parses(path: str) -> None:
    command = dict((" ".join(p), c) for p, c in _leaves())[path]
    found = examples(command)
    assert found, f"{path} has no example"
    for example in found:
        words = shlex.split(example)
        start = words.index("mediactl")  # `printf %s "$KEY" | mediactl ...`
        argv = words[start + 1 :]
        argv = argv[: argv.index(">")] if ">" in argv else argv  # `... > openapi.json`
        argv = argv[: argv.index("|")] if "|" in argv else argv  # `... | grep monitor`
        problem = _parse_problem(argv)
        assert problem is None or problem == path, f"{example}: {problem}"


def _parse_problem(argv: list[str]) -> str | None:
    """None when the command line parses; the command path when only a file it names is missing."""
    try:
        _parse(argv)
    except click.BadParameter as error:
        kind = error.param.type if error.param is not None else None
        if isinstance(kind, click.File | click.Path) and error.ctx is not None:
            return error.ctx.command_path.removeprefix("mediactl ")  # a file the example reads
        return str(error)
    except click.UsageError as error:
        return str(error)
    return None


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["healt"], "Did you mean 'health'?"),
        (["thumbnail", "a.jpg"], "Did you mean 'mediactl process thumbnail'?"),
        (["stats"], "Did you mean 'mediactl cache stats'?"),
        (["cache", "stat"], "Did you mean 'stats'?"),
        (["batch", "lst"], "Did you mean 'list'?"),
        (["process", "analyse", "x.jpg"], "Did you mean 'analyze'?"),
        (["catalog", "sumary"], "Did you mean 'summary'?"),
        (["monitor", "alert"], "Did you mean 'alerts'?"),
        (["gateway", "newkey"], "Did you mean 'new-key'?"),
        (["trace", "shw"], "Did you mean 'show'?"),
        (["batch", "run", "thumbnal"], "Did you mean 'thumbnail'?"),
        (["process", "thumbnail", "a.jpg", "--format", "webm"], "Did you mean 'webp'?"),
        (["catalog", "query", "--wher", "x"], "Did you mean one of: '--help', '--where'?"),
    ],
)
def test_a_mistyped_name_gets_the_nearest_at_every_level(argv: list[str], suggestion: str) -> None:
    result = _invoke(cli, argv)
    assert result.exit_code == 2
    assert suggestion in result.output


def test_the_suite_command_suggests_too() -> None:
    result = _invoke(suite_cli, ["upp"])
    assert result.exit_code == 2
    assert "Did you mean 'up'?" in result.output
    assert "--no-sample" in _help(suite_cli, "up")


def test_an_option_of_mediactl_after_the_command_says_where_it_goes() -> None:
    result = _invoke(cli, ["catalog", "query", "--batch-addr", "10.0.0.5:50053"])
    assert result.exit_code == 2
    assert (
        "--batch-addr is an option of mediactl itself: put it before the command, "
        "as in `mediactl --batch-addr ... catalog query ...`" in result.output
    )


def test_an_address_from_the_environment_is_checked_and_named() -> None:
    result = _invoke(cli, ["catalog", "summary"], env={"BATCH_ADDR": "nope"})
    assert result.exit_code == 2
    assert "'nope' (from BATCH_ADDR): expected host:port" in result.output
    result = _invoke(cli, ["--cache-addr", "a b", "health"])
    assert "'a b': expected host:port" in result.output

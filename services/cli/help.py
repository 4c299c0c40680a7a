"""Help that helps: command lists grouped by service with an example each, and suggestions for
every mistyped command, subcommand, choice or misplaced option.

Every click group of ``mediactl`` and ``mediasuite`` is a :class:`SuiteGroup`. Its help lists each
command it reaches (``cache stats``, ``process thumbnail`` ...) with its one-line description and
the first example of its docstring (``Example: mediactl ...`` or the lines under ``Examples:``);
the root groups them by the service they call (the module that defines them:
``services/cli/<service>_commands.py``). A name that is not a command gets the nearest one at
this level (click's own "Did you mean"), or, when nothing here is close, the commands of that
name or a close one anywhere in the tree ("Did you mean 'mediactl process thumbnail'?").
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import click

__all__ = ["Choice", "SuiteGroup", "examples", "leaf_commands"]

# Sections of the root help, in this order: the service a module's commands call.
_SECTIONS = {
    "suite": "every service at once",
    "cache": "cache service (--cache-addr)",
    "processing": "processing service (--processing-addr)",
    "batch": "batch service: imports, bulk operations, the catalog (--batch-addr)",
    "monitor": "monitor (--monitor-addr)",
    "gateway": "HTTP gateway (offline: keys, routes, OpenAPI)",
}


def _service(command: click.Command) -> str:
    module = getattr(command.callback, "__module__", "") or ""
    name = module.rsplit(".", 1)[-1].removesuffix("_commands")
    return name if name in _SECTIONS else "suite"


def examples(command: click.Command) -> list[str]:
    """The examples in a command's help text, comments dropped."""
    lines = inspect.cleandoc(command.help or "").splitlines()
    found: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("Example:"):
            found.append(stripped.removeprefix("Example:").strip())
        elif stripped == "Examples:":
            for follow in lines[index + 1 :]:
                if not follow.strip() or not follow.startswith((" ", "\t")):
                    break
                found.append(follow.strip())
    return [example.split("  #", 1)[0].strip() for example in found]


def leaf_commands(
    group: click.Group, ctx: click.Context, prefix: Sequence[str] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command below ``group`` that is not itself a group, with its path, in listing order."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from leaf_commands(command, ctx, path)
        else:
            yield path, command


def _nearest_anywhere(root: click.Group, ctx: click.Context, name: str) -> list[str]:
    paths = {" ".join(path): path for path, _ in leaf_commands(root, ctx)}
    exact = [text for text, path in paths.items() if path[-1] == name]
    if exact:
        return exact
    by_last: dict[str, str] = {}
    for text, path in paths.items():
        by_last.setdefault(path[-1], text)
    return [by_last[close] for close in difflib.get_close_matches(name, list(by_last), n=3)]


class SuiteGroup(click.Group):
    """A click group whose help shows examples and whose errors point at the nearest command."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List every command reached from here: one line of description and one example each."""
        leaves = list(leaf_commands(self, ctx))
        if not leaves:
            return
        width = max(len(" ".join(path)) for path, _ in leaves) + 2
        sections: dict[str, list[tuple[tuple[str, ...], click.Command]]] = {}
        grouped = ctx.parent is None
        for path, command in leaves:
            sections.setdefault(_service(command) if grouped else "", []).append((path, command))
        title = "Commands by service" if grouped else "Commands"
        with formatter.section(f"{title} (`{ctx.command_path} COMMAND --help` for its options)"):
            for key in [k for k in _SECTIONS if k in sections] if grouped else [""]:
                if grouped:
                    formatter.write_text(f"{key}: {_SECTIONS[key]}")
                    formatter.indent()
                for path, command in sections[key]:
                    self._write_command(formatter, " ".join(path), command, width)
                if grouped:
                    formatter.dedent()

    @staticmethod
    def _write_command(formatter: click.HelpFormatter, name: str, command: click.Command, width: int) -> None:
        indent = " " * (formatter.current_indent + width)
        text_width = max(40, (formatter.width or 80) - len(indent))
        description = click.wrap_text(command.get_short_help_str(limit=300), text_width).splitlines() or [""]
        formatter.write(f"{'':>{formatter.current_indent}}{name:<{width}}{description[0]}\n")
        for line in description[1:]:
            formatter.write(f"{indent}{line}\n")
        example = next(iter(examples(command)), "")
        if example:
            formatter.write(f"{indent}$ {example}\n")

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Resolve a subcommand; when there is none of that name, suggest the nearest one anywhere."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            if not args or getattr(error, "possibilities", None) or "No such command" not in error.message:
                raise
            root_ctx = ctx.find_root()
            root = root_ctx.command
            if not isinstance(root, click.Group):
                raise
            program = root_ctx.info_name or "mediactl"
            found = _nearest_anywhere(root, ctx, args[0])
            if not found:
                raise
            shown = " or ".join(repr(f"{program} {path}") for path in found)
            raise click.UsageError(f"No such command {args[0]!r}. Did you mean {shown}?", ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an option of the root given after a subcommand says where it belongs."""
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as error:
            root_ctx = ctx.find_root()
            program = root_ctx.info_name or "mediactl"
            owner = next((p for p in root_ctx.command.params if error.option_name in p.opts), None)
            if owner is None or error.ctx is None or error.ctx is root_ctx:
                raise
            command = error.ctx.command_path.removeprefix(program).strip()
            raise click.UsageError(
                f"{error.option_name} is an option of {program} itself: put it before the command, "
                f"as in `{program} {error.option_name} ... {command} ...`",
                error.ctx,
            ) from None


class Choice(click.Choice):  # type: ignore[type-arg]
    """click.Choice whose error also names the nearest valid value."""

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        """The list of valid values, and the nearest one when there is one."""
        message = super().get_invalid_choice_message(value, ctx)
        close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
        return f"{message} Did you mean {close[0]!r}?" if close else message

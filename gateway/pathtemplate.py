"""Path templates of google.api.http rules, compiled to regular expressions.

The grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

``{x}`` is ``{x=*}``: one path segment. ``**`` matches one or more whole segments, so
``{key=**}`` captures a value with slashes in it. Variables are percent-decoded after matching.
Matching runs on the raw (still percent-encoded) path, so an encoded ``%2F`` inside a
single-segment variable is part of that variable's value, never a separator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["PathTemplate", "TemplateError", "Variable"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL = re.compile(r"[^/{}:*=]+")
_ONE_SEGMENT = r"[^/]+"
_MANY_SEGMENTS = r"[^/]+(?:/[^/]+)*"


class TemplateError(ValueError):
    """A path template that does not follow the grammar; the message names the template and the fault."""


@dataclass(frozen=True)
class Variable:
    """One ``{field.path=...}`` of a template."""

    field_path: tuple[str, ...]
    pattern: str  # the segments it matches, as written ("*", "**", "shelves/*")
    group: str  # name of its regex group

    @property
    def name(self) -> str:
        """The dotted field path ("media.path")."""
        return ".".join(self.field_path)

    @property
    def multi_segment(self) -> bool:
        """Whether it can match more than one path segment (its value may contain "/")."""
        return self.pattern != "*" and (self.pattern == "**" or "/" in self.pattern or "**" in self.pattern)


@dataclass(frozen=True)
class PathTemplate:
    """A compiled template: match a raw request path, get the variables' decoded values."""

    text: str
    verb: str
    variables: tuple[Variable, ...]
    literal_segments: int
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        """Compile ``text``; TemplateError names what is wrong."""
        if not text.startswith("/"):
            raise TemplateError(f"path template {text!r} must start with '/'")
        parser = _Parser(text)
        body, verb = parser.template()
        return cls(
            text=text,
            verb=verb,
            variables=tuple(parser.variables),
            literal_segments=parser.literals,
            regex=re.compile("^" + body + (re.escape(":" + verb) if verb else "") + "$"),
        )

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded value of each variable (by dotted field path), or None when the path does not match."""
        found = self.regex.match(raw_path)
        if found is None:
            return None
        return {v.name: unquote(found.group(v.group)) for v in self.variables}

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: every variable as ``{dotted.name}``, patterns dropped."""
        return re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", self.text)


class _Parser:
    """Recursive-descent parser of one template, producing a regex body."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.variables: list[Variable] = []
        self.literals = 0

    def fail(self, what: str) -> TemplateError:
        return TemplateError(f"path template {self.text!r}, at offset {self.pos}: {what}")

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        if not self.peek(token):
            raise self.fail(f"expected {token!r}")
        self.pos += len(token)

    def template(self) -> tuple[str, str]:
        self.expect("/")
        body = "/" + self.segments(in_variable=False)
        verb = ""
        if self.peek(":"):
            self.pos += 1
            match = _LITERAL.match(self.text, self.pos)
            if match is None:
                raise self.fail("expected a verb after ':'")
            verb = match.group(0)
            self.pos = match.end()
        if self.pos != len(self.text):
            raise self.fail("unexpected text")
        return body, verb

    def segments(self, *, in_variable: bool) -> str:
        parts = [self.segment(in_variable=in_variable)]
        while self.peek("/"):
            self.pos += 1
            parts.append(self.segment(in_variable=in_variable))
        return "/".join(parts)

    def segment(self, *, in_variable: bool) -> str:
        if self.peek("**"):
            self.pos += 2
            return _MANY_SEGMENTS
        if self.peek("*"):
            self.pos += 1
            return _ONE_SEGMENT
        if self.peek("{"):
            if in_variable:
                raise self.fail("variables cannot be nested")
            return self.variable()
        match = _LITERAL.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a literal, '*', '**' or a {variable}")
        self.pos = match.end()
        self.literals += 1
        return re.escape(match.group(0))

    def variable(self) -> str:
        self.expect("{")
        path: list[str] = []
        while True:
            match = _IDENT.match(self.text, self.pos)
            if match is None:
                raise self.fail("expected a field name")
            path.append(match.group(0))
            self.pos = match.end()
            if not self.peek("."):
                break
            self.pos += 1
        pattern_start = self.pos + 1
        if self.peek("="):
            self.pos += 1
            literals_before = self.literals
            inner = self.segments(in_variable=True)
            self.literals = literals_before  # literals inside a variable are part of its value
            pattern = self.text[pattern_start : self.pos]
        else:
            inner, pattern = _ONE_SEGMENT, "*"
        self.expect("}")
        name = ".".join(path)
        if any(v.name == name for v in self.variables):
            raise self.fail(f"variable {name!r} appears twice")
        group = f"v{len(self.variables)}"
        self.variables.append(Variable(tuple(path), pattern, group))
        return f"(?P<{group}>{inner})"

"""Redis-style glob patterns (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``): checked, escaped, matched.

Redis SCAN MATCH compares bytes, so ``?`` matches one byte of the UTF-8 key; the memory backend
matches the same patterns with a bytes regular expression translated here, so both backends
delete exactly the same keys. Patterns Redis would read in surprising ways (an unclosed or empty
``[...]``, a range without an end, a non-ASCII character inside ``[...]``, a lone trailing
backslash) are refused rather than guessed at.
"""

from __future__ import annotations

import re

__all__ = ["check_pattern", "escape", "to_regex"]

_SPECIAL = frozenset("*?[]\\")


def escape(literal: str) -> str:
    """``literal`` with every glob metacharacter escaped, so it matches only itself."""
    if not _SPECIAL.intersection(literal):
        return literal
    return "".join("\\" + c if c in _SPECIAL else c for c in literal)


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid glob, or None when it is."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                return "ends with a lone backslash (write \\\\ for a backslash)"
            i += 2
        elif c == "[":
            problem, i = _check_class(pattern, i)
            if problem:
                return problem
        elif c == "]":
            return f"has an unmatched ']' at position {i} (write \\] for a literal ])"
        else:
            i += 1
    return None


def _check_class(pattern: str, start: int) -> tuple[str | None, int]:
    i, n = start + 1, len(pattern)
    if i < n and pattern[i] == "^":
        i += 1
    members = 0
    while i < n and pattern[i] != "]":
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                break
            c = pattern[i + 1]
            i += 1
        elif i + 1 < n and pattern[i + 1] == "-":
            if i + 2 >= n or pattern[i + 2] == "]":
                return f"has a range without an end at position {i}", i
            if not pattern[i + 2].isascii():
                return f"has a non-ASCII character inside [...] at position {i + 2}", i
            i += 2
        if not c.isascii():
            return f"has a non-ASCII character inside [...] at position {i}", i
        members += 1
        i += 1
    if i >= n:
        return f"has an unclosed '[' at position {start}", i
    if members == 0:
        return f"has an empty '[]' at position {start}", i
    return None, i + 1


def to_regex(pattern: str) -> re.Pattern[bytes]:
    """A compiled bytes expression matching exactly the UTF-8 keys the (valid) glob matches."""
    data = pattern.encode()
    out: list[bytes] = []
    i, n = 0, len(data)
    while i < n:
        c = data[i : i + 1]
        if c == b"\\":
            out.append(re.escape(data[i + 1 : i + 2]))
            i += 2
        elif c == b"*":
            out.append(b".*")
            i += 1
        elif c == b"?":
            out.append(b".")
            i += 1
        elif c == b"[":
            i += 1
            negate = data[i : i + 1] == b"^"
            if negate:
                i += 1
            parts: list[bytes] = []
            while data[i : i + 1] != b"]":
                ch = data[i : i + 1]
                if ch == b"\\":
                    parts.append(re.escape(data[i + 1 : i + 2]))
                    i += 2
                elif data[i + 1 : i + 2] == b"-":
                    lo, hi = sorted((ch, data[i + 2 : i + 3]))
                    parts.append(re.escape(lo) + b"-" + re.escape(hi))
                    i += 3
                else:
                    parts.append(re.escape(ch))
                    i += 1
            i += 1  # the closing ]
            out.append(b"[" + (b"^" if negate else b"") + b"".join(parts) + b"]")
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile(b"".join(out), re.DOTALL)

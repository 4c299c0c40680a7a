"""Keep the README's generated sections true: the configuration table.

python tools/readme.py          # rewrite the section from the code
python tools/readme.py --check  # exit 1 when the README differs from the code
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.cli.suite import configuration_table

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- configuration-table"
END = "<!-- end configuration-table -->"


def render(text: str) -> str:
    """The README text with the configuration table regenerated."""
    start = text.index("\n", text.index(START)) + 1
    end = text.index(END)
    return text[:start] + configuration_table() + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on a difference")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if current != wanted:
            print(
                "README.md's configuration table is out of date: run `python tools/readme.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m trenches.settings --markdown [PAGE]``: print the reference of every
``trenches.toml`` key, or bring it up to date between the markers of PAGE
(``docs/configuration.md``)."""

from __future__ import annotations

import argparse
import sys

from trenches.settings import reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trenches.settings",
        description="The reference of every trenches.toml key, from its declaration.",
    )
    parser.add_argument("--markdown", action="store_true", help="Write it as Markdown.")
    parser.add_argument(
        "page",
        nargs="?",
        help="Rewrite the reference between the markers of this page instead of printing it "
        "(e.g. docs/configuration.md).",
    )
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.error("only --markdown is written so far")
    if args.page is None:
        sys.stdout.write(reference.markdown())
        return 0
    changed = reference.write(args.page)
    print(f"{args.page}: {'brought up to date' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m recattn_lessons.exercises build|check [--solutions DIR] [--exercises DIR]``.

Introduced with the interview exercises: ``build`` regenerates
``exercises/`` from ``solutions/``; ``check`` exits with 1 if they differ.
"""

from __future__ import annotations

import argparse
import sys

from recattn_lessons.exercises import build, check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recattn_lessons.exercises")
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--solutions", default="solutions")
    parser.add_argument("--exercises", default="exercises")
    args = parser.parse_args(argv)
    if args.command == "build":
        for path in build(args.solutions, args.exercises):
            print(f"wrote {path}")
        return 0
    problems = check(args.solutions, args.exercises)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("run: python -m recattn_lessons.exercises build", file=sys.stderr)
        return 1
    print("exercises/ is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

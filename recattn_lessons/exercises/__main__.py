"""``python -m recattn_lessons.exercises build|check [--force] [--solutions DIR] [--exercises DIR]``.

Introduced with the interview exercises: ``build`` regenerates
``exercises/`` from ``solutions/`` but keeps every notebook a learner has
edited (``--force`` overwrites those too); ``check`` exits with 1 if
``exercises/`` is missing, stale or committed out of sync.
"""

from __future__ import annotations

import argparse
import sys

from recattn_lessons.exercises import SAFE_REBUILD, build, check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recattn_lessons.exercises")
    parser.add_argument("command", choices=["build", "check"])
    parser.add_argument("--solutions", default="solutions")
    parser.add_argument("--exercises", default="exercises")
    parser.add_argument("--force", action="store_true",
                        help="also overwrite exercise notebooks you have edited (loses your answers)")
    args = parser.parse_args(argv)
    if args.command == "build":
        kept: list = []
        for path in build(args.solutions, args.exercises, force=args.force, kept=kept):
            print(f"up to date: {path}")
        for path in kept:
            print(f"kept your edited {path} (not regenerated)")
        return 0
    problems = check(args.solutions, args.exercises)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"to regenerate: {SAFE_REBUILD}", file=sys.stderr)
        return 1
    print("exercises/ is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

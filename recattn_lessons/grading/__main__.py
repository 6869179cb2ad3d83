"""``python -m recattn_lessons.grading list [DIR]``: progress over the exercises.

Introduced with the interview exercises. Prints one line per exercise
notebook in DIR (default ``exercises/``), like ``rustlings list``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recattn_lessons.progress import tqdm

from recattn_lessons.grading.runner import run_notebooks

_ICON = {"passed": "[PASS]", "failed": "[FAIL]", "not attempted": "[TODO]", "no checks": "[    ]"}  # ASCII: no emoji font needed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recattn_lessons.grading")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list every exercise as passed, failed or not attempted")
    ls.add_argument("dir", nargs="?", default="exercises", help="folder of exercise notebooks")
    ls.add_argument("--timeout", type=int, default=120, help="seconds per notebook")
    ls.add_argument("-v", "--verbose", action="store_true", help="show each check's message")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print(f"no exercise notebooks (NN_name.ipynb) in {folder.resolve()}; "
              f"pass the folder, e.g. python -m recattn_lessons.grading list exercises",
              file=sys.stderr)
        return 2
    rows = []
    runs = run_notebooks(notebooks, args.timeout)
    for nb, (status, results) in zip(notebooks, tqdm(runs, total=len(notebooks), desc="checking",
                                                     unit="notebook", leave=False)):
        rows.append((nb.stem, status, results))
    width = max(len(r[0]) for r in rows)
    for name, status, results in rows:
        print(f"{_ICON[status]} {name:<{width}}  {status}")
        if args.verbose or status == "failed":
            for r in results:
                if not r.passed and r.attempted:
                    first = r.message.splitlines()[0] if r.message else ""
                    label = f"{r.exercise_id}: " if r.exercise_id else ""
                    print(f"     {label}{first}")
    done = sum(s == "passed" for _, s, _ in rows)
    graded = sum(s != "no checks" for _, s, _ in rows)
    print(f"\n{done}/{graded} exercises passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

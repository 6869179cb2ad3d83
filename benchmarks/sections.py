"""BENCHMARKS.md is written by several scripts; each owns one section between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->``. Pure functions, tested in
``tests/test_attention_cost.py``, ``tests/test_serving_cost.py`` and
``tests/test_benchmark_recommender.py``."""

from __future__ import annotations

import re

SECTION = re.compile(r"<!-- (?P<name>[\w-]+):start -->.*?<!-- (?P=name):end -->\n?", re.S)
__all__ = ["SECTION", "markers", "splice", "keep_sections"]


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of section ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def splice(markdown: str, section: str) -> str:
    """Replace the text between the section's own markers (its first and last
    lines) by ``section``, or append it at the end."""
    lines = section.strip("\n").split("\n")
    start, end = lines[0], lines[-1]
    if not (start.startswith("<!-- ") and start.endswith(":start -->") and end == start.replace(":start", ":end")):
        raise ValueError(f"a section must open with <!-- NAME:start --> and close with <!-- NAME:end -->, "
                         f"got {start!r} ... {end!r}")
    if start in markdown and end in markdown.split(start, 1)[1]:
        head, rest = markdown.split(start, 1)
        return head + section.rstrip("\n") + rest.split(end, 1)[1]
    return markdown.rstrip("\n") + ("\n\n" if markdown.strip() else "") + section


def keep_sections(previous: str, rendered: str) -> str:
    """``rendered`` plus every marked section of ``previous`` that ``rendered`` lacks:
    re-rendering one benchmark's tables keeps the sections the others wrote."""
    have = {m["name"] for m in SECTION.finditer(rendered)}
    extra = [m.group(0) for m in SECTION.finditer(previous) if m["name"] not in have]
    if not extra:
        return rendered
    return rendered.rstrip("\n") + "\n\n" + "\n".join(b.rstrip("\n") + "\n" for b in extra)

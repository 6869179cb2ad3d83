"""Build the course as a static website from the notebooks' committed outputs.

Introduced with the course site (issue 16). Nothing is executed: every
notebook of ``notebooks/``, ``exercises/`` and ``solutions/`` (whatever is
there, by glob) is exported with nbconvert's ``lab`` template as it is on
disk, so the pages show exactly the outputs nbval checks. ``BENCHMARKS.md``
and the two folder READMEs become pages too, and a front page lists the
lessons. The site mirrors the repository's folders (``notebooks/NN.html``
next to ``exercises/NN.html``), so relative links keep working once
``.ipynb``/``.md`` targets are renamed to ``.html``.

Offline by construction: no CDN script (see ``template.py``), MathJax copied
from the ``jupyter-server-mathjax`` package, figures written as PNG files.
An ipywidgets output keeps the static picture stored beside it and gets a
note that the live version runs in JupyterLab.
"""

from __future__ import annotations

import copy
import posixpath
import re
import shutil
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Literal

import nbformat

from recattn_lessons.site.template import CSS, TEMPLATE, TEMPLATE_NAME

Kind = Literal["front", "lesson", "exercise", "solution", "markdown"]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
MARKER = ".recattn-site"  # build() only ever deletes a folder that holds this file
STATIC_NOTE = (
    '<p class="recattn-static-note"><b>Interactive in JupyterLab.</b> What follows is a '
    "static picture of this interactive explorer; the live version, with its controls, runs "
    "in JupyterLab: open this notebook there (<code>make lab</code>) and run the cell.</p>")
FRONT_INTRO = """\
A hands-on course: a sequence of notebooks walks from a hand-computed Q/K/V example to a
trained sequential recommender, backed by a small helper package (`recattn_lessons`).

This website shows every notebook **as committed, with its outputs** (the ones the test suite
checks); nothing here runs. To run the code, change it and do the exercises, clone the course
and open it in JupyterLab: `make lab` (or the set-up without `make` in the [README](README.md)).
"""


@dataclass(frozen=True)
class Page:
    source: str  # repo-relative source ("notebooks/01_x.ipynb", "BENCHMARKS.md"; "" = front)
    out: str  # site-relative output ("notebooks/01_x.html")
    kind: Kind
    title: str  # plain text, for <title> and the navigation


def plain_title(markdown_heading: str) -> str:
    """'Lesson 02 · Scoring functions, and why $\\sqrt{d_k}$' -> '... why √d_k'."""
    text = re.sub(r"\\sqrt\{([^}]*)\}", r"√\1", markdown_heading.lstrip("#").strip())
    return re.sub(r"[$`*\\]", "", text).strip()


def _notebook_title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return plain_title(line)
    return path.stem


def collect_pages(root: Path) -> list[Page]:
    """Every page of the site, front page first; notebooks by glob, in name order."""
    pages = [Page("", "index.html", "front", "recattn: attention for recommender systems")]
    for folder, kind in (("notebooks", "lesson"), ("exercises", "exercise"),
                         ("solutions", "solution")):
        readme = root / folder / "README.md"
        if readme.exists() and folder != "notebooks":
            title = "Interview exercises" if kind == "exercise" else "Solutions"
            pages.append(Page(f"{folder}/README.md", f"{folder}/index.html", "markdown", title))
        for nb in sorted((root / folder).glob("*.ipynb")):
            pages.append(Page(f"{folder}/{nb.name}", f"{folder}/{nb.stem}.html", kind,
                              _notebook_title(nb)))
    for name, title in (("BENCHMARKS.md", "Benchmarks"), ("README.md", "README")):
        if (root / name).exists():
            pages.append(Page(name, name[:-len(".md")] + ".html", "markdown", title))
    return pages


def site_map(pages: list[Page]) -> dict[str, str]:
    """Repo path (file or folder) -> site page, for rewriting links."""
    mapping = {p.source: p.out for p in pages if p.source}
    mapping.update({".": "index.html", "notebooks": "index.html"})
    for folder in ("exercises", "solutions"):
        if f"{folder}/README.md" in mapping:
            mapping[folder] = f"{folder}/index.html"
    return mapping


def static_widgets(nb: nbformat.NotebookNode) -> None:
    """Replace each widget view (in place) by a note and the picture stored with it."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_MIME not in data:
                outputs.append(out)
                continue
            outputs.append(nbformat.v4.new_output("display_data", data={"text/html": STATIC_NOTE}))
            rest = {k: v for k, v in data.items() if k not in (WIDGET_MIME, "text/plain")}
            if rest:  # the explorer's own picture (lesson 06); lesson 02's follows separately
                picture = copy.deepcopy(out)
                picture["data"] = rest
                outputs.append(picture)
        cell["outputs"] = outputs


def _relative(target: str, from_page: str) -> str:
    return posixpath.relpath(target, posixpath.dirname(from_page) or ".")


def _resolve(link: str, page: Page, mapping: dict[str, str]) -> str | None:
    """The site page a repo-relative link (from ``page``'s folder) means, or None."""
    here = posixpath.dirname(page.source)
    for base in (here, ""):
        target = posixpath.normpath(posixpath.join(base, link))
        if target in mapping:
            return _relative(mapping[target], page.out)
    return None


def rewrite_links(html: str, page: Page, mapping: dict[str, str], root: Path,
                  copies: set[str]) -> str:
    """Point .ipynb/.md links at pages, link code spans that name a page, copy linked files
    (a figure, a script) into ``copies``."""
    def href(match: re.Match) -> str:
        link = match.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", link, re.I):
            return match.group(0)
        path, _, fragment = link.partition("#")
        new = _resolve(path, page, mapping)
        if new is None:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(page.source), path))
            if not target.startswith("..") and (root / target).is_file():
                copies.add(target)  # same relative place in the site: the link stays valid
            return match.group(0)
        return match.group(1) + escape(new + ("#" + fragment if fragment else "")) + match.group(3)

    html = re.sub(r'(<(?:a|img)\b[^>]*?\b(?:href|src)=")([^"]*)(")', href, html)

    def code(match: re.Match) -> str:
        text = match.group(1)
        if text is None or not re.search(r"\.(ipynb|md)$|/$", text):
            return match.group(0)
        new = _resolve(text, page, mapping)
        return match.group(0) if new is None else f'<a href="{escape(new)}">{match.group(0)}</a>'

    return re.sub(r"<a\b.*?</a>|<code>([^<]+)</code>", code, html, flags=re.S)


def _nav(page: Page, pages: list[Page]) -> str:
    def link(target: Page, text: str, cls: str = "") -> str:
        attr = f' class="{cls}"' if cls else ""
        return (f'<a{attr} href="{escape(_relative(target.out, page.out))}">'
                f"{escape(text)}</a>")

    by_out = {p.out: p for p in pages}
    items = [link(pages[0], "recattn", "recattn-home")]
    for out, text in (("exercises/index.html", "Exercises"), ("solutions/index.html", "Solutions"),
                      ("BENCHMARKS.html", "Benchmarks"), ("README.html", "README (set-up)")):
        if out in by_out:
            items.append(link(by_out[out], text))
    same = [p for p in pages if p.kind == page.kind and page.kind != "markdown"
            and page.kind != "front"]
    if page in same:
        i = same.index(page)
        if i > 0:
            items.append(link(same[i - 1], "← " + same[i - 1].title))
        if i + 1 < len(same):
            items.append(link(same[i + 1], same[i + 1].title + " →"))
    twin = {"exercise": "solutions", "solution": "exercises"}.get(page.kind)
    if twin:
        other = by_out.get(f"{twin}/{posixpath.basename(page.out)}")
        if other:
            items.append(link(other, "its solution" if twin == "solutions" else "the exercise"))
    return " ".join(items)


def _readme_lesson_notes(root: Path) -> dict[str, str]:
    """stem -> 'what you leave with' from the README's lesson table (may lack new lessons)."""
    readme = root / "README.md"
    notes = {}
    if readme.exists():
        for m in re.finditer(r"^\|\s*\d+\s*\|\s*`([^`]+)`\s*\|\s*(.*?)\s*\|\s*$",
                             readme.read_text(encoding="utf-8"), re.M):
            notes[m.group(1)] = m.group(2)
    return notes


def front_markdown(pages: list[Page], root: Path) -> str:
    notes = _readme_lesson_notes(root)
    rows = ["| # | lesson | what you leave with |", "|---|---|---|"]
    for p in pages:
        if p.kind == "lesson":
            stem = posixpath.basename(p.source)[:-len(".ipynb")]
            rows.append(f"| {stem[:2]} | [{p.title}]({p.source}) | {notes.get(stem, '')} |")
    solutions = {posixpath.basename(p.source): p for p in pages if p.kind == "solution"}
    exercises = ["| # | exercise | solution |", "|---|---|---|"]
    for p in pages:
        if p.kind == "exercise":
            sol = solutions.get(posixpath.basename(p.source))
            exercises.append(f"| {posixpath.basename(p.source)[:2]} | [{p.title}]({p.source}) | "
                             + (f"[solution]({sol.source})" if sol else "") + " |")
    parts = ["# recattn: attention mechanisms for recommender systems, hands-on", FRONT_INTRO,
             "## Lessons", "\n".join(rows),
             "## Interview exercises",
             "Each exercise is checked by `check(...)` when you run it in JupyterLab; "
             "[how they work](exercises/README.md), [the solutions](solutions/README.md).",
             "\n".join(exercises)]
    if any(p.source == "BENCHMARKS.md" for p in pages):
        parts += ["## Benchmarks", "Every trained model's numbers, with their settings and "
                  "intervals: [BENCHMARKS](BENCHMARKS.md)."]
    return "\n\n".join(parts) + "\n"


def folder_index_markdown(page: Page, pages: list[Page], root: Path) -> str:
    """A folder README plus the list of every notebook in that folder."""
    folder = posixpath.dirname(page.source)
    lines = [(root / page.source).read_text(encoding="utf-8"),
             f"\n## Every notebook in `{folder}/`\n"]
    for p in pages:
        if posixpath.dirname(p.source) == folder and p.source.endswith(".ipynb"):
            lines.append(f"- [{p.title}]({posixpath.basename(p.source)})")
    return "\n".join(lines) + "\n"


def _page_notebook(page: Page, pages: list[Page], root: Path) -> nbformat.NotebookNode:
    if page.source.endswith(".ipynb"):
        nb = nbformat.read(root / page.source, as_version=4)
        static_widgets(nb)
    else:
        if page.kind == "front":
            text = front_markdown(pages, root)
        elif page.source.endswith("/README.md"):  # a folder README
            text = folder_index_markdown(page, pages, root)
        else:
            text = (root / page.source).read_text(encoding="utf-8")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text, id="page")])
    nb.metadata["title"] = page.title if page.kind == "front" else f"{page.title} · recattn"
    return nb


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExtractOutputPreprocessor

    exporter = HTMLExporter(template_name="lab", template_file=TEMPLATE_NAME,
                            extra_loaders=[DictLoader({TEMPLATE_NAME: TEMPLATE})])
    exporter.register_preprocessor(ExtractOutputPreprocessor(), enabled=True)
    return exporter


def _mathjax_dir() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError as e:
        raise SystemExit("the site needs MathJax from the jupyter-server-mathjax package: "
                         ".venv/bin/python -m pip install -e '.[dev]'") from e
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def build(root: str | Path = ".", out: str | Path = "_site", log=print) -> list[Page]:
    """Build the site of the course in ``root`` into ``out`` (replaced); return its pages."""
    root, out = Path(root).resolve(), Path(out).resolve()
    if out.exists():
        if not (out / MARKER).exists():
            raise SystemExit(f"{out} exists and is not a site built here; remove it or pick --out")
        shutil.rmtree(out)
    (out / "_static").mkdir(parents=True)
    (out / MARKER).write_text("built by python -m recattn_lessons.site build\n")
    shutil.copytree(_mathjax_dir(), out / "_static" / "mathjax")
    (out / "_static" / "recattn.css").write_text(CSS)

    pages, exporter, copies = collect_pages(root), _exporter(), set()
    mapping = site_map(pages)
    for page in pages:
        stem = posixpath.basename(page.out)[:-len(".html")]
        resources = {"unique_key": stem, "output_files_dir": f"{stem}_files",
                     "recattn": {"root": _relative("index.html", page.out)[:-len("index.html")],
                                 "nav": _nav(page, pages)}}
        html, res = exporter.from_notebook_node(_page_notebook(page, pages, root), resources)
        target = out / page.out
        target.parent.mkdir(parents=True, exist_ok=True)
        for name, data in res.get("outputs", {}).items():  # figures, as files
            (target.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (target.parent / name).write_bytes(data)
        target.write_text(rewrite_links(html, page, mapping, root, copies), encoding="utf-8")
        log(f"  {page.out}")
    for rel in sorted(copies):  # files linked from a page (a figure, a script): same place
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, out / rel)
    return pages

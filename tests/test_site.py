"""The course as a static website (issue 16), built and read in a real browser.

Builds the site once (``python -m recattn_lessons.site build``, as ``make
site`` does) into a temporary folder, serves it with the documented command
(``python -m recattn_lessons.site serve``) on 127.0.0.1, and opens every page
in headless Chromium with **every request that leaves 127.0.0.1 refused**, so
a CDN script or font would show up as a failure. On each page: the title, every
image loaded, no raw widget text, every internal link leading to a page (or
anchor) that exists. On top: math typeset by the MathJax the site serves, the
Chinese quotes of lesson 01 kept, each explorer a static picture with its note,
and links from the lessons into exercises/ and solutions/. A screenshot of
lesson 06 goes to ``test-artifacts/`` (git-ignored).

The browser part is skipped, with the reason, when Playwright or Chromium is
missing (``apt-get install chromium``; CI's ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest

from recattn_lessons.site import collect_pages

CHROMIUM = os.environ.get("RECATTN_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CJK = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]{4,}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "_site"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "recattn_lessons.site", "build",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"site built in {time.perf_counter() - start:.1f} s")
    return out


@pytest.fixture(scope="module")
def served(site, tmp_path_factory):
    """``python -m recattn_lessons.site serve`` on a free port; always stopped."""
    port = _free_port()
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "recattn_lessons.site", "serve",
                             "--out", str(site), "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed: pip install playwright")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` "
                    f"(or set RECATTN_CHROMIUM to a Chromium binary)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def _widget_count(source: str) -> int:
    nb = nbformat.read(ROOT / source, as_version=4)
    return sum(WIDGET_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_site_has_every_notebook_and_no_network_reference(site):
    pages = collect_pages(ROOT)
    for folder in ("notebooks", "exercises", "solutions"):
        for nb in sorted((ROOT / folder).glob("*.ipynb")):
            assert (site / folder / f"{nb.stem}.html").is_file(), f"no page for {folder}/{nb.name}"
    assert (site / "index.html").is_file() and (site / "BENCHMARKS.html").is_file()
    assert len(pages) == len(list(site.rglob("*.html")))
    assert (site / "_static" / "mathjax" / "MathJax.js").is_file()
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//[^"]*"', text)
        assert not remote, f"{html.relative_to(site)} loads from the network: {remote[:3]}"
        assert "interactive(children=" not in text, html.relative_to(site)


def test_every_page_in_a_browser_offline(site, served, browser):
    pages = collect_pages(ROOT)
    origin = urlparse(served).netloc
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    refused: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).netloc == origin:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    links: dict[str, set[str]] = {}  # target url (with fragment) -> pages linking to it
    ids: dict[str, set[str]] = {}  # page url -> element ids on it
    lesson_links: set[str] = set()
    for p in pages:
        url = served + p.out
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        title = page.title()
        assert title.startswith(p.title), (p.out, title)
        broken = page.evaluate("""() => [...document.images]
            .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)""")
        assert not broken, f"{p.out}: broken images {broken[:3]}"
        body = page.inner_text("body")
        assert "interactive(children=" not in body, p.out
        found = page.evaluate("""() => ({
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id)})""")
        ids[url] = set(found["ids"])
        for href in found["links"]:
            if urlparse(href).netloc == origin:
                links.setdefault(href, set()).add(p.out)
                if p.kind == "lesson":
                    lesson_links.add(urldefrag(href).url)
        if p.source.endswith(".ipynb") and (n := _widget_count(p.source)):
            pictures = page.evaluate("""() => [...document.querySelectorAll('.recattn-static-note')]
                .map(n => n.closest('.jp-Cell').querySelectorAll('img').length)""")
            assert len(pictures) == n and all(pictures), (p.out, pictures)
            assert "live version" in body and "JupyterLab" in body
        if p.source == "notebooks/01_worked_qkv_example.ipynb":
            nb = nbformat.read(ROOT / p.source, as_version=4)
            quotes = {q for c in nb.cells if c.cell_type == "markdown"
                      for q in CJK.findall(c.source)}
            lost = [q for q in quotes if q not in body]
            assert quotes and not lost, f"Chinese quotes lost their characters: {lost[:3]}"
        if p.source == "notebooks/02_scoring_functions.ipynb":
            page.wait_for_function("""() => window.MathJax && MathJax.Hub
                && MathJax.Hub.queue.pending === 0 && document.querySelector('.MathJax')""",
                                   timeout=20_000)
            assert not page.query_selector(".MathJax_Error, .merror")
        if p.source == "notebooks/06_seeing_attention.ipynb":
            ARTIFACTS.mkdir(exist_ok=True)
            page.query_selector(".recattn-static-note").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "site_lesson06_explorer.png"))
    for href, sources in links.items():
        target, fragment = urldefrag(href)
        if target not in ids:  # not a page: a copied file, must still answer
            try:
                with urllib.request.urlopen(target, timeout=5) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            assert ok, f"{href} (linked from {sorted(sources)[:3]}) leads nowhere"
        elif fragment:
            assert fragment in ids[target], f"{href} (from {sorted(sources)[:3]}): no such anchor"
    for folder in ("exercises", "solutions"):  # a notebook page, not only the folder's index
        assert any(re.search(rf"/{folder}/\d\d_\w+\.html$", u) for u in lesson_links), \
            f"no lesson links to a notebook in {folder}/"
    assert not refused, f"requests left 127.0.0.1: {refused[:5]}"
    assert not errors, f"page errors: {errors[:5]}"
    context.close()


def test_make_site_is_the_documented_command():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for target, command in (("site", "-m recattn_lessons.site build"),
                            ("serve-site", "-m recattn_lessons.site serve --port 8000")):
        # --no-print-directory and no MAKEFLAGS/MAKELEVEL: under `make test` this make is a
        # sub-make, which would otherwise print "Entering directory" around the command
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        done = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", target],
                              cwd=ROOT, capture_output=True, text=True, timeout=30, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f".venv/bin/python {command}", done.stdout

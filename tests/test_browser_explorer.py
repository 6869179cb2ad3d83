"""The attention explorer in a real browser (lesson 06, issue 5).

Starts JupyterLab on loopback with a random port and a token, opens a small
explorer notebook in headless Chromium (Debian's ``chromium`` package,
driven by Playwright), runs all cells, changes the user and the head, and
checks that the rendered view changed and that no error appeared. A second
test starts ``make lab`` itself (without the install step) and checks that
the course folder is JupyterLab's root: notebooks/, exercises/ and
solutions/ in the file browser, lesson 00 opening with its kernel.
Screenshots go to ``test-artifacts/``.

Skipped, with the reason, when Playwright or Chromium is missing
(``apt-get install chromium``; CI's ``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RECATTN_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SERVER_START_S = 45  # JupyterLab must answer within this
RUN_ALL_S = 60  # the notebook must render the explorer within this
UPDATE_S = 10  # a widget change must re-render within this

NOTEBOOK_CELLS = [
    "# The explorer on real MovieLens titles, with a small untrained SASRec:\n"
    "# this notebook checks the user interface, not the model.\n"
    "import torch\n"
    "from recattn_lessons.data.movielens import load_movielens\n"
    "from recattn_lessons.data.splits import histories, leave_one_out\n"
    "from recattn_lessons.models import build\n"
    "from recattn_lessons.viz.explorer import explore",
    "data = load_movielens()\n"
    "split = leave_one_out(data)\n"
    "H = histories(split, 'test', maxlen=30)\n"
    "torch.manual_seed(0)\n"
    "model = build('sasrec', data.n_items, maxlen=30, d_model=16, n_heads=2, n_blocks=2)",
    "explore(model, H, data.titles, users=range(8), last=15)",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def _quiet_settings(settings_dir: Path) -> None:
    """No "get notified about Jupyter news?" toast over the screenshots."""
    f = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _quiet_env(tmp_path: Path) -> dict:
    """Jupyter's runtime, config, workspaces and settings in tmp_path; no news, no autosave."""
    settings = tmp_path / ".settings"
    _quiet_settings(settings)
    autosave = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    autosave.parent.mkdir(parents=True)
    autosave.write_text(json.dumps({"autosave": False}))  # never write a course file
    return dict(os.environ,
                JUPYTER_RUNTIME_DIR=str(tmp_path / ".runtime"),
                JUPYTER_CONFIG_DIR=str(tmp_path / ".config"),
                JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / ".workspaces"),
                JUPYTERLAB_SETTINGS_DIR=str(settings))


@contextmanager
def _server(cmd: list[str], cwd: Path, env: dict, port: int, token: str, log_path: Path):
    """Run a JupyterLab command until it answers on ``port``; always kill it."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n"
                            + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


QUIET_LAB = ["--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
             "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving ``tmp_path``; always killed."""
    port, token = _free_port(), uuid.uuid4().hex
    _write_notebook(tmp_path / "explorer.ipynb")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--allow-root", *QUIET_LAB,
           f"--ServerApp.port={port}", f"--ServerApp.token={token}",
           f"--ServerApp.root_dir={tmp_path}"]
    with _server(cmd, tmp_path, _quiet_env(tmp_path), port, token, tmp_path / "lab.log") as base:
        yield base, token


@pytest.fixture
def make_lab(tmp_path):
    """``make lab`` as a learner types it (root or not), minus the install step."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("no .venv/bin/jupyter: run `make venv` first")
    port, token = _free_port(), uuid.uuid4().hex
    args = " ".join([*QUIET_LAB, f"--ServerApp.port={port}",
                     f"--IdentityProvider.token={token}"])
    # -o: treat the install stamp as up to date, so only the lab command runs
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", "lab",
           f"JUPYTER_ARGS={args}"]
    with _server(cmd, ROOT, _quiet_env(tmp_path), port, token, tmp_path / "make_lab.log") as base:
        yield base, token, tmp_path / "make_lab.log"


@pytest.fixture
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


def _heatmap_state(page) -> dict:
    return page.evaluate("""() => {
        const el = document.querySelector('.recattn-explorer-heatmap .recattn-heatmap');
        return el ? {user: el.dataset.user, head: el.dataset.head, html: el.outerHTML} : null;
    }""")


def _wait_changed(page, key: str, old: str) -> dict:
    page.wait_for_function(
        """([key, old]) => {
            const el = document.querySelector('.recattn-explorer-heatmap .recattn-heatmap');
            return el && el.dataset[key] !== old;
        }""", arg=[key, old], timeout=UPDATE_S * 1000)
    return _heatmap_state(page)


def _errors(page) -> list[str]:
    return page.evaluate("""() => [
        ...document.querySelectorAll(
            '[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output.jp-mod-error')
        ].map(e => e.innerText.slice(0, 500))""")


def test_explorer_in_jupyterlab(lab, browser):
    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console_errors: list[str] = []
    page.on("pageerror", lambda err: console_errors.append(str(err)))
    page.set_default_timeout(RUN_ALL_S * 1000)
    page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")
    # the notebook is open and its kernel is ready
    page.wait_for_function("""() => {
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session
                  && w.sessionContext.session.kernel;
        return k && k.status === 'idle';
    }""")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".recattn-explorer .recattn-heatmap", timeout=RUN_ALL_S * 1000)
    first = _heatmap_state(page)
    page.screenshot(path=str(ARTIFACTS / "explorer_1_initial.png"), full_page=True)
    assert first["head"] == "-1", "the explorer should open on the mean over heads"
    assert "Error displaying widget" not in page.inner_text("body")

    page.select_option(".recattn-explorer-user select", index=3)
    second = _wait_changed(page, "user", first["user"])
    page.screenshot(path=str(ARTIFACTS / "explorer_2_user.png"), full_page=True)
    assert second["html"] != first["html"], "changing the user did not change the heatmap"

    page.select_option(".recattn-explorer-head select", index=1)
    third = _wait_changed(page, "head", second["head"])
    page.screenshot(path=str(ARTIFACTS / "explorer_3_head.png"), full_page=True)
    assert third["user"] == second["user"] and third["head"] == "0"
    assert third["html"] != second["html"], "changing the head did not change the heatmap"

    status = page.inner_text(".recattn-explorer-status")
    seconds = float(status.split("updated in")[1].split("s")[0])
    assert seconds < 1.0, f"an update took {seconds} s in the kernel (want well under 1 s)"
    assert _errors(page) == [], f"error output in the notebook: {_errors(page)}"
    assert console_errors == [], f"JavaScript errors: {json.dumps(console_errors)[:1000]}"


def test_make_lab_serves_the_course_folder(make_lab, browser):
    base, token, log = make_lab
    with urllib.request.urlopen(f"{base}/api/contents/exercises?token={token}", timeout=10) as r:
        exercises = [c["name"] for c in json.load(r)["content"]]
    on_disk = sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    assert on_disk and sorted(n for n in exercises if n.endswith(".ipynb")) == on_disk
    assert "--allow-root" in log.read_text() or os.geteuid() != 0  # root handled by make

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    console_errors: list[str] = []
    page.on("pageerror", lambda err: console_errors.append(str(err)))
    page.set_default_timeout(RUN_ALL_S * 1000)
    page.goto(f"{base}/lab?token={token}")
    page.wait_for_selector(".jp-DirListing-item")
    listed = page.evaluate("""() => [...document.querySelectorAll(
        '.jp-DirListing-item .jp-DirListing-itemText')].map(e => e.innerText.trim())""")
    assert {"notebooks", "exercises", "solutions"} <= set(listed), listed
    page.evaluate("""() => window.jupyterapp.commands.execute(
        'docmanager:open', {path: 'notebooks/00_setup_check.ipynb'})""")
    page.wait_for_function("""() => {
        const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session
                  && w.sessionContext.session.kernel;
        return w && w.context && w.context.path === 'notebooks/00_setup_check.ipynb'
               && k && k.status === 'idle';
    }""")
    page.screenshot(path=str(ARTIFACTS / "make_lab_lesson00.png"))
    assert console_errors == [], f"JavaScript errors: {json.dumps(console_errors)[:1000]}"


COLD_CELLS = [
    "import ipywidgets as widgets, matplotlib.pyplot as plt\n"
    "from recattn_lessons.progress import tqdm\n"
    "from recattn_lessons.viz import live",
    "def draw(temperature=1.0):\n"
    "    plt.figure(figsize=(3, 2)); plt.plot([0, 1], [0, temperature]); plt.show()\n"
    "live(draw, temperature=widgets.FloatSlider(value=1.0, min=0.1, max=4, description='T'))",
    "for epoch in tqdm(range(3), desc='demo epochs'):\n"
    "    for _ in tqdm(range(50), desc=f'epoch {epoch + 1}', leave=False):\n"
    "        pass",
]


def test_saved_outputs_read_well_when_opened_cold(lab, browser):
    """A notebook executed by nbconvert, opened without running it: a figure under the
    slider's controls, each progress bar as its final line, no raw widget repr."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    base, token = lab
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in COLD_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    body = json.dumps({"type": "notebook", "format": "json", "content": nb})
    req = urllib.request.Request(f"{base}/api/contents/cold.ipynb?token={token}",
                                 data=body.encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).close()

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(RUN_ALL_S * 1000)
    page.goto(f"{base}/lab/tree/cold.ipynb?token={token}")
    page.wait_for_selector(".jp-OutputArea-output img")
    page.wait_for_function("() => document.body.innerText.includes('demo epochs: 100%')")
    page.screenshot(path=str(ARTIFACTS / "cold_outputs.png"), full_page=True)
    text = page.inner_text(".jp-Notebook")
    assert "interactive(children" not in text
    assert not re.search(r"(?<!\d)0%\|", text), "a frozen 0% progress bar was saved"

"""What a learner sees in the committed notebooks (issue 13).

- nbval markers stay out of sight: a cell tag (``nbval-ignore-output`` /
  ``nbval-skip``) with its reason in the cell's metadata, never a
  ``# NBVAL_IGNORE_OUTPUT`` comment heading a learner-facing cell;
- saved outputs read well when a notebook is opened cold: no frozen
  ``0%| | 0/72`` progress bars, no raw ``interactive(children=...`` widget
  reprs without a figure next to them;
- every command a lesson tells learners to type works after ``make lab``:
  ``.venv/bin/...`` or a ``make`` target, never a bare ``python -m ...``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for d in ("notebooks", "exercises", "solutions") for p in (ROOT / d).glob("*.ipynb"))
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]
NBVAL_TAGS = {"nbval-ignore-output", "nbval-skip", "nbval-raises-exception"}

FROZEN_BAR = re.compile(r"\b0%\|[^|\n]*\|\s*0/\d+")  # tqdm's text before any step
RAW_WIDGET = re.compile(r"^\s*(interactive|HBox|VBox|FloatLogSlider|IntProgress)\(children=|^\s*\w+\(value=",
                        re.MULTILINE)
BARE_COMMAND = re.compile(r"(?<!`)`(python3?|jupyter|pip3?|pytest|mutmut) [^`\n]*`(?!`)")  # not ```python fences


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def plain_texts(cell: dict) -> list[str]:
    """The text a reader sees of each saved output (streams and text/plain)."""
    out = []
    for o in cell.get("outputs", []):
        if "text" in o:
            out.append("".join(o["text"]))
        elif "text/plain" in o.get("data", {}):
            out.append("".join(o["data"]["text/plain"]))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_nbval_markers_are_tags_with_a_reason(path):
    for i, cell in enumerate(cells(path)):
        src = "".join(cell["source"])
        assert not re.search(r"^\s*#\s*(NBVAL_|why:)", src, re.MULTILINE), (
            f"{path.name} cell {i}: an nbval comment heads the cell; use the cell tag "
            "'nbval-ignore-output' and metadata recattn.ignore_reason instead")
        tags = set(cell.get("metadata", {}).get("tags", [])) & NBVAL_TAGS
        if tags:
            reason = cell["metadata"].get("recattn", {}).get("ignore_reason", "")
            assert len(reason.strip()) >= 10, (
                f"{path.name} cell {i}: tagged {sorted(tags)} without a reason; add metadata "
                '"recattn": {"ignore_reason": "<what truly varies>"}')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_saved_outputs_read_well_when_opened_cold(path):
    for i, cell in enumerate(cells(path)):
        for text in plain_texts(cell):
            assert not FROZEN_BAR.search(text), f"{path.name} cell {i}: a frozen progress bar: {text[:80]!r}"
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if RAW_WIDGET.search("".join(data.get("text/plain", ""))):
                assert "image/png" in data or any("image/png" in p.get("data", {})
                                                  for p in cell["outputs"]), (
                    f"{path.name} cell {i}: a widget saved as its raw repr with no static figure")


@pytest.mark.parametrize("path", [*NOTEBOOKS, ROOT / "exercises" / "README.md", ROOT / "solutions" / "README.md"],
                         ids=[*IDS, "exercises/README.md", "solutions/README.md"])
def test_commands_for_learners_work_after_make_lab(path):
    if path.suffix == ".md":
        texts = [path.read_text(encoding="utf-8")]
    else:
        texts = ["".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown"]
        texts += [t for c in cells(path) for t in plain_texts(c)]
    for text in texts:
        bare = BARE_COMMAND.findall(text)
        assert not bare, (f"{path.relative_to(ROOT)}: tells learners to type a bare "
                          f"{', '.join(sorted(set(bare)))} command; write `.venv/bin/...` or a make target: "
                          f"{BARE_COMMAND.search(text).group(0)}")


def test_the_markers_test_would_catch_a_comment_and_a_missing_reason(tmp_path):
    bad = {"cells": [{"cell_type": "code", "source": ["# NBVAL_IGNORE_OUTPUT\n", "x = 1"], "metadata": {},
                      "outputs": []},
                     {"cell_type": "code", "source": ["y = 2"], "metadata": {"tags": ["nbval-skip"]},
                      "outputs": []}]}
    nb = tmp_path / "bad.ipynb"
    nb.write_text(json.dumps(bad))
    with pytest.raises(AssertionError, match="nbval comment"):
        test_nbval_markers_are_tags_with_a_reason(nb)
    bad["cells"].pop(0)
    nb.write_text(json.dumps(bad))
    with pytest.raises(AssertionError, match="without a reason"):
        test_nbval_markers_are_tags_with_a_reason(nb)


def test_the_cold_test_would_catch_a_frozen_bar_and_a_raw_widget(tmp_path):
    def nb_with(text: str) -> Path:
        out = {"output_type": "display_data", "metadata": {}, "data": {"text/plain": [text]}}
        path = tmp_path / "nb.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [], "metadata": {},
                                               "outputs": [out]}]}))
        return path

    with pytest.raises(AssertionError, match="frozen"):
        test_saved_outputs_read_well_when_opened_cold(nb_with("epoch 1:   0%|          | 0/72 [00:00<?, ?it/s]"))
    with pytest.raises(AssertionError, match="raw repr"):
        test_saved_outputs_read_well_when_opened_cold(nb_with("interactive(children=(FloatLogSlider(value=1.0"))
    test_saved_outputs_read_well_when_opened_cold(nb_with("sasrec: 100%|##########| 6/6 [00:54<00:00]"))

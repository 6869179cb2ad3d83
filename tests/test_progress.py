"""recattn_lessons.progress: terminal tqdm outside Jupyter, final text line inside."""

import re
from pathlib import Path

import nbformat
import pytest
from tqdm import std

from recattn_lessons import progress

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")


def test_outside_a_kernel_it_is_terminal_tqdm(capsys):
    assert not progress.in_notebook()
    bar = progress.tqdm(range(3), desc="plain")
    assert type(bar) is std.tqdm
    assert list(bar) == [0, 1, 2]
    assert "plain: 100%" in capsys.readouterr().err
    assert list(progress.trange(2, 5, disable=True)) == [2, 3, 4]


def test_in_a_kernel_each_bar_is_saved_as_its_final_line():
    nbclient = pytest.importorskip("nbclient")
    code = ("from recattn_lessons.progress import tqdm\n"
            "for e in tqdm(range(3), desc='epochs'):\n"
            "    for b in tqdm(range(40), desc=f'epoch {e + 1}', leave=False):\n"
            "        pass\n"
            "stopped = tqdm(total=10, desc='early stop')\n"
            "stopped.update(4)\n"
            "stopped.close()\n"
            "print('done')")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outs = nb.cells[0].outputs
    shown = [o for o in outs if o.output_type == "display_data"]
    assert all(set(o.data) == {"text/plain"} for o in shown)  # no widget left in the file
    texts = [o.data["text/plain"] for o in shown]
    assert re.fullmatch(r"epochs: 100%\|█+\| 3/3 \[.*\]", texts[0])
    assert texts[1:4] == ["", "", ""]  # leave=False bars leave nothing
    assert re.fullmatch(r"early stop:  40%\|.*\| 4/10 \[.*\]", texts[4])
    assert outs[-1].text == "done\n"


def test_sanitizer_masks_tqdm_timings_in_every_form():
    cfg = SANITIZE.read_text()
    pairs = re.findall(r"^regex: (.*)\nreplace: (.*)$", cfg, flags=re.M)
    lines = ["epochs: 100%|██████████| 6/6 [00:54<00:00,  9.10s/it]",
             "epoch 1:   0%|          | 0/72 [00:00<?, ?it/s]",
             "evaluate: 100%|██████████| 6/6 [00:01<00:00,  5.33it/s, loss=0.51]",
             "long: 100%|██████████| 9/9 [1:02:03<00:00, 413.67s/it]"]
    for line in lines:
        for regex, replace in pairs:
            line = re.sub(regex, replace, line)
        assert line.endswith("[TIME]"), line


def test_write_prints_a_line_like_tqdm_write(capsys):
    from recattn_lessons.progress import tqdm

    tqdm.write("between bars")
    assert "between bars" in capsys.readouterr().out

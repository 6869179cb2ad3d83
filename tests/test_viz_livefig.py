"""recattn_lessons.viz.live: an interact whose saved notebook shows a figure."""

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import nbformat
import pytest

from recattn_lessons.viz import LIVE_NOTE, Live
from recattn_lessons.viz.livefig import render

matplotlib.use("Agg")


def draw(temperature=1.0):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title(f"T = {temperature}")


def test_render_captures_open_figures_and_text():
    def noisy(n=2):
        print("hello")
        plt.subplots(1, n)

    outs = render(noisy, n=3)
    assert outs[0][0] == {"text/plain": "hello"}
    assert outs[1][0]["image/png"] and outs[1][0]["text/plain"].endswith("with 3 Axes>")
    assert plt.get_fignums() == []  # closed after rendering


def test_first_frame_is_static_and_text_form_is_friendly():
    slider = widgets.FloatSlider(value=0.5, min=0.1, max=2, description="T")
    view = Live(draw, temperature=slider)
    assert len(view.preview) == 1 and "image/png" in view.preview[0][0]
    assert view.text.startswith(LIVE_NOTE) and "controls: T" in view.text
    assert "interactive(" not in view.text
    assert view.widget.out.outputs == ()  # the live area starts empty


def test_defaults_of_the_function_become_controls():
    view = Live(lambda k=3: plt.subplots())
    assert [w._kwarg for w in view.widget.kwargs_widgets] == ["k"]


def test_in_a_kernel_saved_outputs_are_controls_then_a_png():
    nbclient = pytest.importorskip("nbclient")
    setup = ("import ipywidgets as widgets, matplotlib.pyplot as plt\n"
             "from recattn_lessons.viz import live\n"
             "def draw(temperature=1.0):\n"
             "    plt.plot([0, temperature]); plt.show()\n"
             "slider = widgets.FloatSlider(value=1.0, min=0.1, max=4, description='T')\n"
             "live(draw, temperature=slider)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup)])
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3")
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        controls, frame = nb.cells[0].outputs
        assert controls.data["text/plain"].startswith(LIVE_NOTE)
        assert "application/vnd.jupyter.widget-view+json" in controls.data
        assert "image/png" in frame.data and "Figure" in frame.data["text/plain"]
        # moving the slider blanks the static frame; the live figure takes over
        nb.cells.append(nbformat.v4.new_code_cell("slider.value = 2.0"))
        client.execute_cell(nb.cells[1], 1)
        assert nb.cells[0].outputs[1].data == {"text/plain": ""}

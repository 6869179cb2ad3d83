"""Interactive figures that still show a figure in a saved notebook (lesson 02).

Import as ``from recattn_lessons.viz import live``.

``live(draw, temperature=slider)`` is ``ipywidgets.interact(draw, ...)``
with a static first frame. It displays two outputs:

1. the live controls, whose text form is one friendly line ("run this cell
   in JupyterLab for the live version") instead of the raw
   ``interactive(children=(FloatLogSlider(...`` repr;
2. a plain picture of ``draw`` at the controls' initial values (an ordinary
   PNG output, so every viewer shows it: JupyterLab opened cold, GitHub,
   nbconvert's HTML).

The first time a control moves, the static picture is blanked and the live
figure takes its place, directly under the controls, so a running notebook
never shows the figure twice.
"""

from __future__ import annotations

import base64
import functools
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from IPython.utils.capture import capture_output

__all__ = ["Live", "live", "LIVE_NOTE"]

LIVE_NOTE = "Run this cell in JupyterLab for the live version"


def _figure_output(fig) -> dict:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
            "text/plain": f"<Figure size {fig.bbox.width:.0f}x{fig.bbox.height:.0f} "
                          f"with {len(fig.axes)} Axes>"}


def render(fn, **kwargs) -> list[tuple[dict, dict]]:
    """Call ``fn(**kwargs)`` and return what it showed as ``(data, metadata)`` outputs.

    Captures displayed outputs (``plt.show()`` under the inline backend),
    printed text, and figures ``fn`` left open (rendered to PNG, then closed),
    so the result does not depend on the matplotlib backend.
    """
    before = set(plt.get_fignums())
    with capture_output() as cap:
        fn(**kwargs)
    outputs = []
    if cap.stdout:
        outputs.append(({"text/plain": cap.stdout.rstrip("\n")}, {}))
    outputs += [(dict(o.data), dict(o.metadata or {})) for o in cap.outputs]
    for num in sorted(set(plt.get_fignums()) - before):
        fig = plt.figure(num)
        outputs.append((_figure_output(fig), {}))
        plt.close(fig)
    return outputs


class _Controls:
    """The interactive widget with a one-line text form."""

    def __init__(self, widget: widgets.Widget, text: str) -> None:
        self.widget, self.text = widget, text

    def _repr_mimebundle_(self, **kwargs):
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text
        return bundle


class Live:
    """``interactive(fn, **controls)`` plus a static picture of its first frame.

    Build it, then :meth:`show` it (or use :func:`live`). ``preview`` holds
    the first frame's outputs; ``widget`` is the ``ipywidgets.interactive``.
    """

    def __init__(self, fn, /, **controls) -> None:
        self.fn = fn
        self.preview: list[tuple[dict, dict]] = []
        self._handles: list = []
        self._first = True

        @functools.wraps(fn)  # keeps fn's signature: interact reads its defaults
        def call(**kwargs):
            if self._first:  # interactive's own first call: draw the static frame instead
                self._first = False
                self.preview = render(fn, **kwargs)
                return None
            self._blank_preview()
            return fn(**kwargs)

        self.widget = widgets.interactive(call, **controls)
        names = ", ".join(w.description or w._kwarg for w in self.widget.kwargs_widgets
                          if isinstance(w, widgets.DOMWidget))
        self.text = f"{LIVE_NOTE} (controls: {names}); the figure below is its first frame."

    def _blank_preview(self) -> None:
        for handle in self._handles:
            handle.update({"text/plain": ""}, raw=True)
        self._handles = []

    def show(self) -> None:
        """Display the controls, then the static first frame."""
        display(_Controls(self.widget, self.text))
        self._handles = [display(data, metadata=md, raw=True, display_id=True)
                         for data, md in self.preview]


def live(fn, /, **controls) -> None:
    """Like ``ipywidgets.interact(fn, **controls)``, with a static first frame.

    Example (lesson 02)::

        slider = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, description="T")
        live(draw, temperature=slider)

    Returns None, so the cell shows nothing else.
    """
    Live(fn, **controls).show()

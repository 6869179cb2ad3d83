"""Progress bars that still read well in a saved notebook.

Use ``from recattn_lessons.progress import tqdm`` instead of ``tqdm.auto``.
Outside a Jupyter kernel it *is* the terminal ``tqdm``. Inside a kernel it
shows tqdm's live widget while it runs, and when the bar closes it replaces
that widget by one line of text: the bar's final state, e.g.::

    sasrec epochs: 100%|██████████| 6/6 [00:54<00:00,  9.10s/it]

(``leave=False`` bars leave an empty line instead). So a notebook executed by
``nbconvert`` or saved from JupyterLab keeps the final line of each bar, never
a stack of frozen ``0%| | 0/72`` widgets that only a live kernel can draw.
"""

from __future__ import annotations

from tqdm import std

__all__ = ["tqdm", "trange", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can be displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class _Widget:
    """Wraps tqdm's widget so its text form is the bar, not an ipywidgets repr."""

    def __init__(self, bar: "notebook_tqdm") -> None:
        self.bar = bar

    def _repr_mimebundle_(self, **kwargs):
        bundle = dict(self.bar.container._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = std.tqdm.__str__(self.bar)
        return bundle


try:
    from tqdm.notebook import tqdm as _tqdm_notebook
except ImportError:  # pragma: no cover - ipywidgets is a course dependency
    _tqdm_notebook = None

if _tqdm_notebook is not None:

    class notebook_tqdm(_tqdm_notebook):  # noqa: N801 - tqdm's naming
        """tqdm's notebook bar whose display becomes its final text line on close."""

        def __init__(self, *args, **kwargs):
            kwargs["display"] = False
            super().__init__(*args, **kwargs)
            self._handle = None
            if not self.disable:
                from IPython.display import display

                self._handle = display(_Widget(self), display_id=True)
                self.displayed = True

        def close(self):
            if self.disable or getattr(self, "_finished", False):
                return super().close()
            self._finished = True
            super().close()
            if self._handle is None:
                return
            incomplete = bool(self.total) and self.n < self.total
            text = std.tqdm.__str__(self) if self.leave or incomplete else ""
            self._handle.update({"text/plain": text}, raw=True)
            self.container.close()  # the widget is no longer shown anywhere


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm`` whose notebook form is saved as its final line."""
    if in_notebook() and _tqdm_notebook is not None:
        return notebook_tqdm(*args, **kwargs)
    return std.tqdm(*args, **kwargs)


def trange(*args, **kwargs):
    """``tqdm(range(*args), **kwargs)``."""
    return tqdm(range(*args), **kwargs)


# ``tqdm.write(msg)`` prints a line without breaking the bars, as with tqdm's own class.
tqdm.write = std.tqdm.write

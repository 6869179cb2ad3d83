"""Static, labelled attention heatmaps (introduced in lessons 01-03).

Two functions, and a helper for crowded axes:

- ``attention_heatmap(weights, ...)`` draws one ``(Lq, Lk)`` matrix on one
  Axes with labelled axes, a colour bar and, for small matrices, the value
  of every cell. It returns the Axes.
- ``show_heatmaps(matrices, ...)`` follows d2l's contract: a 4-D
  ``(rows, cols, Lq, Lk)`` array drawn as a grid that shares one colour bar
  (so colours mean the same number in every panel). It returns the Figure.
- ``fit_tick_labels(fig)`` (opt-in, lesson 06) turns colliding column labels
  upright and thins out labels that still collide, measured on the laid-out
  figure.

Both accept torch tensors (any device, with or without grad) or anything
numpy can turn into a float array. Long tick labels (movie titles) are cut
with an ellipsis and column labels are rotated so they stay legible.
"""

from __future__ import annotations

from collections.abc import Sequence

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure

__all__ = ["attention_heatmap", "show_heatmaps", "fit_tick_labels"]

ANNOTATE_MAX = 12  # annotate cells automatically up to this many rows/cols
MAX_LABEL_CHARS = 24  # longer tick labels are cut and end with an ellipsis


def _to_numpy(x, name: str) -> np.ndarray:
    """Float numpy copy of a tensor/array/list, with a clear error."""
    if hasattr(x, "detach"):  # torch.Tensor (avoids importing torch here)
        x = x.detach().cpu().double().numpy()
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a numeric tensor or array, got {type(x).__name__}: {err}"
        ) from None


def shorten(label, max_chars: int = MAX_LABEL_CHARS) -> str:
    """``str(label)``, cut to ``max_chars`` characters ending in an ellipsis."""
    text = str(label)
    if max_chars < 2:
        raise ValueError(f"max_chars must be at least 2, got {max_chars}")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "\u2026"


def _check_labels(labels, n: int, name: str, axis: str, shape) -> list[str] | None:
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(
            f"{name} has {len(labels)} labels but the matrix of shape "
            f"{tuple(shape)} has {n} {axis}: give exactly one label per {axis[:-1]}"
        )
    return labels


def _label_inches(labels, max_chars: int) -> float:
    """Rough room (inches) that tick labels need at 10 pt."""
    if labels is None:
        return 0.0
    return 0.075 * max(len(shorten(s, max_chars)) for s in labels)


def _draw(ax: Axes, w: np.ndarray, row_labels, col_labels, annotate, cmap,
          vmin, vmax, fmt: str, max_label_chars: int, show_x: bool = True,
          show_y: bool = True, fontsize: float = 8):
    """Draw one (Lq, Lk) matrix on ``ax``; return the AxesImage."""
    Lq, Lk = w.shape
    im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    if annotate is None:
        annotate = Lq <= ANNOTATE_MAX and Lk <= ANNOTATE_MAX
    if annotate:
        rgba = im.cmap(im.norm(w))  # (Lq, Lk, 4): the colour of every cell
        luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])  # (Lq, Lk)
        for i in range(Lq):
            for j in range(Lk):
                ax.text(j, i, format(w[i, j], fmt), ha="center", va="center",
                        fontsize=fontsize, color="white" if luminance[i, j] < 0.5 else "black")
    if row_labels is not None and show_y:
        ax.set_yticks(range(Lq), [shorten(s, max_label_chars) for s in row_labels])
    elif not show_y:
        ax.set_yticks(range(Lq), [""] * Lq)
    if col_labels is not None and show_x:
        texts = [shorten(s, max_label_chars) for s in col_labels]
        if max(len(t) for t in texts) > 3:  # rotate anything longer than "k12"
            ax.set_xticks(range(Lk), texts, rotation=45, ha="right",
                          rotation_mode="anchor")
        else:
            ax.set_xticks(range(Lk), texts)
    elif not show_x:
        ax.set_xticks(range(Lk), [""] * Lk)
    return im


def attention_heatmap(
    weights,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "keys",
    ylabel: str = "queries",
    fmt: str = ".2f",
    max_label_chars: int = MAX_LABEL_CHARS,
) -> Axes:
    """Draw one attention matrix ``(Lq, Lk)`` with labels and a colour bar.

    Introduced in lesson 01. Row ``i`` is query ``i``; column ``j`` is key
    ``j``; the colour is the weight query ``i`` puts on key ``j``.

    Args:
        weights: 2-D ``(Lq, Lk)`` tensor or array. Pick one matrix from a
            batch first, e.g. ``weights[0]`` or one head ``weights[0, 0]``.
        row_labels, col_labels: one label per query / key (e.g. titles).
        ax: Axes to draw on; a new figure is made when ``None``.
        annotate: write each value in its cell; ``None`` means "only when
            the matrix is at most 12 x 12".
        vmin, vmax: colour range; default the matrix's own min and max.

    Returns:
        The matplotlib Axes (its image's ``.colorbar`` is the colour bar).
    """
    w = _to_numpy(weights, "weights")
    if w.ndim != 2:
        hint = {0: "a scalar is not a matrix", 1: "for one query use weights[None]",
                3: "pick one matrix: weights[0]",
                4: "pick one head: weights[0, 0]"}.get(w.ndim, "index down to 2 dims")
        raise ValueError(
            f"attention_heatmap needs a 2-D (queries, keys) matrix, got shape "
            f"{w.shape}: {hint}; to draw many matrices use show_heatmaps"
        )
    if 0 in w.shape:
        raise ValueError(f"weights has shape {w.shape}: nothing to draw")
    rows = _check_labels(row_labels, w.shape[0], "row_labels", "rows", w.shape)
    cols = _check_labels(col_labels, w.shape[1], "col_labels", "columns", w.shape)
    if ax is None:
        Lq, Lk = w.shape
        width = 1.6 + 0.55 * Lk + _label_inches(rows, max_label_chars)
        height = 1.4 + 0.45 * Lq + 0.7 * _label_inches(cols, max_label_chars)
        _, ax = plt.subplots(figsize=(min(width, 14), min(height, 12)), layout="constrained")
    im = _draw(ax, w, rows, cols, annotate, cmap, vmin, vmax, fmt, max_label_chars)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    return ax


def show_heatmaps(
    matrices,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    titles: Sequence | None = None,
    xlabel: str = "keys",
    ylabel: str = "queries",
    figsize: tuple[float, float] = (2.6, 2.6),
    cmap: str = "viridis",
    annotate: bool | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    fmt: str = ".2f",
    max_label_chars: int = MAX_LABEL_CHARS,
    suptitle: str | None = None,
) -> Figure:
    """Draw a grid of attention matrices sharing one colour bar (d2l contract).

    Introduced in lesson 02. ``matrices`` is 4-D ``(rows, cols, Lq, Lk)``:
    e.g. ``(1, 4, Lq, Lk)`` for four scoring functions side by side, or
    ``(n_layers, n_heads, L, L)`` for a transformer. All panels share
    ``vmin``/``vmax`` (default: the min and max over all panels), so one
    colour means one number everywhere.

    Args:
        row_labels, col_labels: one label per query / key, shared by all
            panels (drawn on the left column and the bottom row).
        titles: one title per column (a flat list) or per panel (a list of
            lists, rows x cols).
        figsize: size of one panel in inches.
        annotate: as in :func:`attention_heatmap`.

    Returns:
        The Figure; its panels are ``fig.axes[:-1]`` (the last Axes is the
        colour bar).
    """
    m = _to_numpy(matrices, "matrices")
    if m.ndim != 4:
        hint = {2: "for one matrix use matrices[None, None] (or attention_heatmap)",
                3: "for one row of panels use matrices[None]",
                5: "pick one batch element: matrices[0]"}.get(m.ndim, "")
        raise ValueError(
            f"show_heatmaps needs a 4-D (rows, cols, queries, keys) array, "
            f"got shape {m.shape}" + (f": {hint}" if hint else "")
        )
    if 0 in m.shape:
        raise ValueError(f"matrices has shape {m.shape}: nothing to draw")
    n_rows, n_cols, Lq, Lk = m.shape
    rows = _check_labels(row_labels, Lq, "row_labels", "rows", m.shape[2:])
    cols = _check_labels(col_labels, Lk, "col_labels", "columns", m.shape[2:])
    grid_titles = _grid_titles(titles, n_rows, n_cols)
    vmin = float(np.nanmin(m)) if vmin is None else vmin
    vmax = float(np.nanmax(m)) if vmax is None else vmax
    width = figsize[0] * n_cols + 1.0 + _label_inches(rows, max_label_chars)
    height = figsize[1] * n_rows + 0.5 + 0.7 * _label_inches(cols, max_label_chars)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, layout="constrained",
                             figsize=(width, height))
    fontsize = float(np.clip(figsize[0] * 72 / Lk * 0.3, 5, 8))  # fit "0.00" in a cell
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r, c]
            im = _draw(ax, m[r, c], rows, cols, annotate, cmap, vmin, vmax, fmt,
                       max_label_chars, show_x=r == n_rows - 1, show_y=c == 0,
                       fontsize=fontsize)
            if r == n_rows - 1:
                ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel(ylabel)
            if grid_titles is not None:
                ax.set_title(grid_titles[r][c])
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def _grid_titles(titles, n_rows: int, n_cols: int) -> list[list[str]] | None:
    if titles is None:
        return None
    titles = list(titles)
    if titles and all(isinstance(t, (list, tuple)) for t in titles):
        if len(titles) != n_rows or any(len(t) != n_cols for t in titles):
            raise ValueError(
                f"titles as a list of lists must be {n_rows} rows x {n_cols} "
                f"columns, got {[len(t) for t in titles]} titles per row"
            )
        return [[str(t) for t in row] for row in titles]
    if len(titles) != n_cols:
        raise ValueError(
            f"titles has {len(titles)} entries but the grid has {n_cols} "
            f"columns: give one title per column, or a rows x cols list of lists"
        )
    return [[str(t) for t in titles] for _ in range(n_rows)]


def _tick_step(axis: Axis, pad_px: float) -> int:
    """Smallest k such that every k-th label of ``axis`` clears its neighbour
    by ``pad_px`` pixels (1 = no collision). Needs a laid-out figure."""
    texts = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
    if len(texts) < 2:
        return 1
    boxes = [t.get_window_extent() for t in texts]
    horizontal = axis.axis_name == "x"
    centres = np.sort([(b.x0 + b.x1) / 2 if horizontal else (b.y0 + b.y1) / 2 for b in boxes])
    pitch = float(np.diff(centres).min())
    size = max(b.width if horizontal else b.height for b in boxes)
    return max(1, math.ceil((size + pad_px) / max(pitch, 1e-9)))


def _keep_every(axis: Axis, k: int) -> None:
    """Keep every k-th tick label, counted back from the last one (in a history
    the most recent item), with the labels' rotation and alignment."""
    locs, texts = list(axis.get_ticklocs()), axis.get_ticklabels()
    style = {"rotation": texts[0].get_rotation(), "ha": texts[0].get_ha(),
             "rotation_mode": texts[0].get_rotation_mode()}
    keep = sorted(range(len(locs) - 1, -1, -k))
    axis.set_ticks([locs[i] for i in keep], [texts[i].get_text() for i in keep], **style)


def fit_tick_labels(fig: Figure, axes: Sequence[Axes] | None = None,
                    pad: float = 2.0) -> Figure:
    """Make the tick labels of heatmap panels stop overlapping (lesson 06).

    Lays ``fig`` out (``draw_without_rendering``) and measures every tick
    label of ``axes`` (default: every Axes that holds an image). Column
    labels that collide are turned upright (90 degrees); labels that still
    collide, on either axis, are thinned to every k-th one, always keeping
    the last. ``pad`` is the gap, in points, kept between neighbours.
    Returns ``fig``.
    """
    axes = [ax for ax in (fig.axes if axes is None else axes) if ax.images]
    pad_px = pad * fig.dpi / 72
    fig.draw_without_rendering()
    for ax in axes:
        if _tick_step(ax.xaxis, pad_px) > 1:
            for t in ax.get_xticklabels():
                t.set(rotation=90, ha="center", rotation_mode="default")
    fig.draw_without_rendering()
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            k = _tick_step(axis, pad_px)
            if k > 1:
                _keep_every(axis, k)
    return fig

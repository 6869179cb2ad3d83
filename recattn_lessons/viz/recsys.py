"""Attention over a user's history, drawn with real titles (lesson 06).

Three static views, built on :mod:`recattn_lessons.viz.heatmaps`:

- :func:`history_heatmap` one SASRec attention matrix over one user's
  history: the causal triangle, padding removed, titles on both axes;
- :func:`layer_head_grid` every layer x head of one user at once, one
  shared colour bar so equal colours mean equal weights;
- :func:`din_bars` DIN's candidate-to-history weights as bar charts;
- :func:`faithfulness_bars` how often each attribution method names the
  planted cause (``recattn_lessons.faithfulness``).

Histories are left-padded with item id 0 (the course's convention); the
padding columns are dropped before drawing. Rows carry numbered titles,
columns only the numbers (titles under every column would collide). Titles
longer than ``max_label_chars`` are cut with an ellipsis; the figure then
lists the full titles of the cut ones under it, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from recattn_lessons.viz.heatmaps import (
    MAX_LABEL_CHARS,
    _to_numpy,
    attention_heatmap,
    fit_tick_labels,
    shorten,
    show_heatmaps,
)

__all__ = ["real_positions", "history_labels", "history_heatmap", "layer_head_grid",
           "din_bars", "stack_attention", "faithfulness_bars"]


def real_positions(history) -> np.ndarray:
    """Indices of the non-padding (id != 0) entries of a 1-D history."""
    h = _to_numpy(history, "history").astype(int)
    if h.ndim != 1:
        raise ValueError(
            f"history must be one user's 1-D sequence of item ids, got shape "
            f"{h.shape}; pick one user first, e.g. histories[u]"
        )
    idx = np.flatnonzero(h)
    if idx.size == 0:
        raise ValueError("history holds only padding (item id 0): nothing to draw")
    return idx


def history_labels(items, titles: Sequence[str], max_label_chars: int = MAX_LABEL_CHARS,
                   numbered: bool = True, start: int = 1) -> tuple[list[str], list[str]]:
    """(tick labels, notes) for item ids: "3. Star Wars: Episode…" and the full
    title of every label that had to be cut ("3. Star Wars: Episode IV (1977)").
    Numbers count from ``start`` (the item's place in the whole history)."""
    labels, notes = [], []
    for n, i in enumerate(np.asarray(items, dtype=int).tolist(), start=start):
        if not 0 <= i < len(titles):
            raise ValueError(
                f"item id {i} has no title: titles has {len(titles)} entries "
                f"(ids 0..{len(titles) - 1}); pass the titles of the same data set"
            )
        full = str(titles[i])
        prefix = f"{n}. " if numbered else ""
        short = shorten(full, max_label_chars)
        labels.append(prefix + short)
        if short != full:
            notes.append(prefix + full)
    return labels, notes


NOTE_FONTSIZE = 9  # points: the "full titles" list must stay readable


def _add_notes(fig: Figure, notes: list[str], max_lines: int = 12):
    """The full titles of the cut labels, one per line, in columns under the
    figure (a figure legend without handles). Returns the Legend (or None)."""
    if not notes:
        return None
    shown = notes[:max_lines] + ([f"... and {len(notes) - max_lines} more"]
                                 if len(notes) > max_lines else [])
    col_inches = 0.4 + 0.55 * NOTE_FONTSIZE / 72 * max(len(s) for s in shown)
    ncols = int(np.clip(fig.get_figwidth() // col_inches, 1, len(shown)))
    handles = [Line2D([], [], linestyle="none") for _ in shown]
    return fig.legend(handles, shown, loc="outside lower center", ncols=ncols,
                      fontsize=NOTE_FONTSIZE, title="full titles of the shortened labels",
                      title_fontsize=NOTE_FONTSIZE, handlelength=0, handletextpad=0,
                      columnspacing=1.5, frameon=False, alignment="left")


def _numbers(labels: list[str]) -> list[str]:
    """The "3" of "3. Star Wars…": columns are the rows' items, so a number is enough
    (whole titles under every column overlap)."""
    return [lab.split(".", 1)[0] for lab in labels]


def _causal_view(w: np.ndarray) -> np.ndarray:
    """Copy of an (L, L) matrix with the unreachable upper triangle set to NaN
    (drawn blank, so the causal triangle is visible)."""
    w = w.astype(float, copy=True)
    w[np.triu_indices(w.shape[-1], k=1)] = np.nan
    return w


def _window(history, last: int | None) -> tuple[np.ndarray, int]:
    """Columns of the most recent ``last`` real items, and the 1-based number
    of the first of them in the whole history."""
    idx = real_positions(history)
    if last is not None:
        if last < 1:
            raise ValueError(f"last must be >= 1 (number of recent items shown), got {last}")
        return idx[-last:], max(len(idx) - last, 0) + 1
    return idx, 1


def history_heatmap(weights, history, titles: Sequence[str], ax: Axes | None = None,
                    last: int | None = 20, title: str | None = None,
                    max_label_chars: int = MAX_LABEL_CHARS, cmap: str = "viridis") -> Axes:
    """One user's causal self-attention over their history (lesson 06).

    Args:
        weights: ``(L, L)`` attention of one layer and head (or a mean over
            heads) for one user, aligned with ``history``.
        history: ``(L,)`` item ids, left-padded with 0.
        titles: ``titles[item_id]``.
        last: show only the most recent ``last`` real items (``None`` = all).
            Rows then no longer sum to 1: the rest of their weight sits on
            older items outside the window.

    Returns:
        The Axes; row ``i`` is the query "after watching item i", columns are
        the items it may look at (items after it are blank: causal mask).
    """
    w = _to_numpy(weights, "weights")
    L = len(_to_numpy(history, "history"))
    if w.shape != (L, L):
        raise ValueError(
            f"weights has shape {w.shape} but the history has {L} positions: "
            f"pass one (L, L) matrix, e.g. attn[layer][user, head]"
        )
    idx, start = _window(history, last)
    items = _to_numpy(history, "history").astype(int)[idx]
    labels, notes = history_labels(items, titles, max_label_chars, start=start)
    view = _causal_view(w[np.ix_(idx, idx)])  # (n, n)
    own_figure = ax is None
    ax = attention_heatmap(view, labels, _numbers(labels), ax=ax, title=title, annotate=False,
                           cmap=cmap, xlabel="attended item (key), numbered as the rows",
                           ylabel="after watching (query)",
                           max_label_chars=max_label_chars + 5)
    ax.images[0].colorbar.ax.set_title("weight", fontsize=9)
    _add_notes(ax.figure, notes)
    if own_figure:  # on a caller's Axes: call fit_tick_labels once the figure is complete
        fit_tick_labels(ax.figure, [ax])
    return ax


def stack_attention(attn) -> np.ndarray:
    """A model's per-layer list of ``(B, H, L, L)`` weights -> ``(layers, B, H, L, L)``."""
    if isinstance(attn, (list, tuple)):
        if not attn:
            raise ValueError("attn is an empty list: the model returned no layers")
        return np.stack([_to_numpy(a, f"attn[{i}]") for i, a in enumerate(attn)])
    a = _to_numpy(attn, "attn")
    if a.ndim != 5:
        raise ValueError(
            f"attn must be a list (one per layer) of (B, H, L, L) tensors or a "
            f"(layers, B, H, L, L) array, got shape {a.shape}"
        )
    return a


def _panel_inches(n_items: int, n_rows: int, n_cols: int, preferred: float) -> float:
    """Side of one grid panel in inches: about 0.2 in (14 pt) per item, so a
    10 pt label fits every row; at least ``preferred`` (less when many
    columns would make the grid wider than about 12 in, never under 2.4 in);
    at most what keeps the grid within about 13 in."""
    smallest = max(min(preferred, 12.0 / n_cols), 2.4)
    largest = max(smallest, 13.0 / max(n_rows, n_cols))
    return float(np.clip(0.2 * n_items, smallest, largest))


def layer_head_grid(attn, history, titles: Sequence[str], user: int = 0,
                    last: int | None = 12, max_label_chars: int = 16,
                    panel_size: float = 3.6, suptitle: str | None = None) -> Figure:
    """Every layer (rows) x head (columns) for one user, one shared colour bar.

    ``attn`` is what SASRec's ``forward(history, return_attention=True)``
    returns: a list with one ``(B, H, L, L)`` tensor per layer; ``history``
    is the ``(L,)`` history of batch element ``user``. ``panel_size`` is the
    preferred side of one panel in inches: panels grow with the number of
    items shown and shrink a little when there are many heads. Titles label
    the left column, numbers the bottom row (labels on the outer axes only).
    """
    a = stack_attention(attn)  # (layers, B, H, L, L)
    if not 0 <= user < a.shape[1]:
        raise ValueError(f"user={user} is outside the batch of {a.shape[1]} histories")
    n_layers, _, H, L, _ = a.shape
    if len(_to_numpy(history, "history")) != L:
        raise ValueError(f"history has {len(history)} positions but attention has L={L}")
    idx, start = _window(history, last)
    items = _to_numpy(history, "history").astype(int)[idx]
    labels, notes = history_labels(items, titles, max_label_chars, start=start)
    grid = a[:, user][:, :, idx][:, :, :, idx]  # (layers, H, n, n)
    grid = np.stack([[_causal_view(m) for m in row] for row in grid])
    names = [[f"layer {i + 1}, head {j + 1}" for j in range(H)] for i in range(n_layers)]
    side = _panel_inches(len(idx), n_layers, H, panel_size)
    fig = show_heatmaps(grid, labels, _numbers(labels), titles=names, annotate=False,
                        xlabel="attended item (key)",
                        ylabel="after watching (query)", figsize=(side, side), vmin=0.0,
                        max_label_chars=max_label_chars + 5, suptitle=suptitle)
    fig.axes[-1].set_ylabel("attention weight")  # the one shared colour bar
    _add_notes(fig, notes)
    return fit_tick_labels(fig)


def din_bars(weights, history, titles: Sequence[str], candidates,
             max_label_chars: int = 28, color: str = "tab:orange") -> Figure:
    """DIN's candidate-to-history weights, one bar chart per candidate.

    Args:
        weights: ``(C, L)`` (or ``(L,)`` for one candidate) weights for one
            user, as in ``model.score(history, candidates,
            return_attention=True)[1][user]``.
        history: ``(L,)`` item ids, left-padded with 0.
        candidates: ``(C,)`` candidate item ids (one panel each).

    Returns:
        The Figure; the longest bar in a panel is the past movie that made
        DIN's interest vector most like that candidate.
    """
    w = _to_numpy(weights, "weights")
    w = w[None] if w.ndim == 1 else w
    cands = np.atleast_1d(_to_numpy(candidates, "candidates").astype(int))
    L = len(_to_numpy(history, "history"))
    if w.ndim != 2 or w.shape != (len(cands), L):
        raise ValueError(
            f"weights has shape {w.shape}; expected (candidates, L) = "
            f"({len(cands)}, {L}): one weight per history item for each candidate"
        )
    idx = real_positions(history)
    items = _to_numpy(history, "history").astype(int)[idx]
    labels, notes = history_labels(items, titles, max_label_chars)
    C, n = len(cands), len(idx)
    fig, axes = plt.subplots(1, C, squeeze=False, sharey=True, layout="constrained",
                             figsize=(1.5 + 2.8 * C, 1.0 + 0.28 * n))
    xmax = float(np.nanmax(w[:, idx])) * 1.1 or 1.0
    for c, ax in enumerate(axes[0]):
        ax.barh(np.arange(n), w[c, idx], color=color)
        ax.set_xlim(0, xmax)
        ax.set_title("candidate: " + shorten(titles[cands[c]], 30), fontsize=9)
        ax.set_xlabel("attention weight")
    axes[0, 0].set_yticks(np.arange(n), labels, fontsize=8)
    axes[0, 0].invert_yaxis()  # oldest item on top, most recent at the bottom
    axes[0, 0].set_ylabel("history (oldest first)")
    _add_notes(fig, notes)
    return fig


def faithfulness_bars(results: dict[str, dict], methods: Sequence[str] | None = None,
                      ax: Axes | None = None) -> Axes:
    """Grouped bars of top-1 hit rates, one group per run (lesson 06).

    ``results`` maps a run's name (e.g. "1 block") to the dict that
    :func:`recattn_lessons.faithfulness.run_check` returns; the chance level
    (``uniform_top1``) is drawn as a dashed line per group.
    """
    if not results:
        raise ValueError("results is empty: pass {run name: run_check(...) dict}")
    methods = list(methods or ["attention", "rollout", "gradient", "occlusion", "uniform"])
    missing = [f"{m}_top1" for r in results.values() for m in methods if f"{m}_top1" not in r]
    if missing:
        raise ValueError(f"results lack {sorted(set(missing))}: pass run_check's output")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 + 0.7 * len(methods) * len(results), 3.6),
                             layout="constrained")
    width = 0.8 / len(methods)
    for k, m in enumerate(methods):
        vals = [r[f"{m}_top1"] for r in results.values()]
        x = np.arange(len(results)) + (k - (len(methods) - 1) / 2) * width
        bars = ax.bar(x, vals, width, label=m, color=f"C{k}" if m != "uniform" else "grey")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(np.arange(len(results)), list(results))
    ax.set_ylim(0, 1.3)  # room for the legend above the bars
    ax.set_ylabel("top-1 = planted cause")
    ax.legend(fontsize=8, ncols=len(methods), loc="upper center", frameon=False)
    return ax

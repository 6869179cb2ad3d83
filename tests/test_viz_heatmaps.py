"""Tests for recattn_lessons.viz.heatmaps (lessons 01-03)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from recattn_lessons.viz import attention_heatmap, show_heatmaps  # noqa: E402
from recattn_lessons.viz.heatmaps import ANNOTATE_MAX, fit_tick_labels, shorten  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_labels_colorbar_and_annotations_small_matrix():
    w = torch.softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), -1)
    rows, cols = ["q0", "q1", "q2"], ["a", "b", "c", "d"]
    ax = attention_heatmap(w, rows, cols, title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == rows
    assert [t.get_text() for t in ax.get_xticklabels()] == cols
    assert ax.images[0].colorbar is not None
    assert len(ax.figure.axes) == 2  # the heatmap and its colour bar
    assert ax.get_title() == "t"
    # one annotation per cell, each the cell's value
    assert _texts(ax) == [f"{v:.2f}" for v in w.flatten().tolist()]
    np.testing.assert_allclose(ax.images[0].get_array(), w.numpy(), rtol=1e-6)


def test_large_matrix_not_annotated_unless_asked():
    n = ANNOTATE_MAX + 1
    w = np.full((n, n), 1.0 / n)
    assert _texts(attention_heatmap(w)) == []
    assert len(_texts(attention_heatmap(w, annotate=True))) == n * n
    assert _texts(attention_heatmap(np.eye(3), annotate=False)) == []


def test_draws_on_given_axes_and_accepts_grad_tensors():
    fig, (a1, a2) = plt.subplots(1, 2)
    w = torch.rand(2, 2, requires_grad=True)
    assert attention_heatmap(w, ax=a2) is a2
    assert not a1.images and a2.images


@pytest.mark.parametrize(
    "shape, hint",
    [((2, 3, 4), "weights[0]"), ((2, 2, 3, 3), "weights[0, 0]"), ((5,), "weights[None]")],
)
def test_not_2d_raises_with_shape_and_fix(shape, hint):
    with pytest.raises(ValueError) as err:
        attention_heatmap(np.zeros(shape))
    assert str(shape) in str(err.value) and hint in str(err.value)


def test_label_count_mismatch_is_named():
    with pytest.raises(ValueError, match=r"row_labels has 2 labels .* has 3 rows"):
        attention_heatmap(np.eye(3), row_labels=["a", "b"])
    with pytest.raises(ValueError, match=r"col_labels has 4 labels .* has 3 columns"):
        attention_heatmap(np.eye(3), col_labels=list("abcd"))


def test_long_labels_truncated_and_columns_rotated():
    title = "Star Wars: Episode IV - A New Hope (1977)"
    ax = attention_heatmap(np.eye(2), [title, "Up"], [title, "Up"], max_label_chars=12)
    ylabels = [t.get_text() for t in ax.get_yticklabels()]
    assert ylabels == ["Star Wars: \u2026", "Up"] and len(ylabels[0]) == 12
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    assert shorten("abc", 3) == "abc" and shorten("abcd", 3) == "ab\u2026"


def test_show_heatmaps_grid_shared_colorbar():
    m = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    fig = show_heatmaps(m, row_labels=list("abcd"), col_labels=list("vwxyz"),
                        titles=["h0", "h1", "h2"])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6 and len(fig.axes) == 7  # six panels + one colour bar
    lo, hi = float(m.min()), float(m.max())
    assert all(ax.images[0].norm.vmin == lo and ax.images[0].norm.vmax == hi for ax in panels)
    assert [ax.get_title() for ax in panels] == ["h0", "h1", "h2"] * 2
    bottom_left = panels[3]
    assert [t.get_text() for t in bottom_left.get_xticklabels()] == list("vwxyz")
    assert [t.get_text() for t in bottom_left.get_yticklabels()] == list("abcd")
    assert all(len(ax.texts) == 20 for ax in panels)


def test_show_heatmaps_errors():
    with pytest.raises(ValueError, match=r"4-D .*\(3, 4, 4\).*matrices\[None\]"):
        show_heatmaps(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="titles has 2 entries but the grid has 3 columns"):
        show_heatmaps(np.zeros((1, 3, 2, 2)), titles=["a", "b"])
    with pytest.raises(ValueError, match="col_labels has 1 labels"):
        show_heatmaps(np.zeros((1, 1, 2, 2)), col_labels=["a"])


def _overlaps(texts, horizontal):
    boxes = sorted((t.get_window_extent() for t in texts if t.get_text()),
                   key=lambda b: b.x0 if horizontal else b.y0)
    return sum(a.x1 > b.x0 if horizontal else a.y1 > b.y0 for a, b in zip(boxes, boxes[1:]))


def test_fit_tick_labels_rotates_then_thins_crowded_labels_and_keeps_the_last():
    n = 60
    names = [f"item number {i}" for i in range(n)]
    ax = attention_heatmap(np.eye(n), names, names, annotate=False)
    fig = ax.figure
    fig.set_size_inches(5, 5)  # far too small for 60 labels a side
    fig.canvas.draw()
    assert _overlaps(ax.get_xticklabels(), True) and _overlaps(ax.get_yticklabels(), False)
    assert fit_tick_labels(fig) is fig
    fig.canvas.draw()
    xs, ys = ax.get_xticklabels(), ax.get_yticklabels()
    assert not _overlaps(xs, True) and not _overlaps(ys, False)
    assert all(t.get_rotation() == 90 for t in xs)
    assert xs[-1].get_text() == ys[-1].get_text() == "item number 59"
    assert 2 <= len(ys) < n and list(ax.get_yticks()) == list(range(n - 1, -1, -n // len(ys)))[::-1]


def test_fit_tick_labels_leaves_roomy_labels_alone():
    ax = attention_heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"])
    before = [(t.get_text(), t.get_rotation()) for t in ax.get_xticklabels()]
    fit_tick_labels(ax.figure)
    assert [(t.get_text(), t.get_rotation()) for t in ax.get_xticklabels()] == before
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]

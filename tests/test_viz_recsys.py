"""Static attention figures over real titles (recattn_lessons.viz.recsys, lesson 06)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from recattn_lessons.models import build  # noqa: E402
from recattn_lessons.viz.recsys import (  # noqa: E402
    NOTE_FONTSIZE, din_bars, history_heatmap, history_labels, layer_head_grid, real_positions)

LONG = "Star Wars: Episode IV - A New Hope (1977)"
TITLES = ["<pad>", LONG, "Heat (1995)", "Fargo (1996)", "Up (2009)", "Alien (1979)"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sasrec_attn():
    torch.manual_seed(0)
    model = build("sasrec", 5, maxlen=6, d_model=8, n_heads=2, n_blocks=3).eval()
    h = torch.tensor([[0, 0, 1, 2, 3, 4], [0, 5, 4, 3, 2, 1]])
    with torch.no_grad():
        _, attn = model(h, return_attention=True)
    return h, attn


def _image(ax):
    return np.ma.filled(ax.images[0].get_array().astype(float), np.nan)


def _notes(fig):
    """The "full titles" list under a figure: (its texts, their font sizes)."""
    assert len(fig.legends) == 1, "the full titles should be listed under the figure"
    texts = [fig.legends[0].get_title()] + fig.legends[0].get_texts()
    return [t.get_text() for t in texts], [t.get_fontsize() for t in texts]


def _collisions(texts, horizontal: bool):
    """Pairs of neighbouring, non-empty tick labels whose boxes overlap."""
    boxes = sorted((t.get_window_extent() for t in texts if t.get_text()),
                   key=lambda b: b.x0 if horizontal else b.y0)
    return [(a, b) for a, b in zip(boxes, boxes[1:])
            if (a.x1 > b.x0 if horizontal else a.y1 > b.y0)]


@pytest.fixture(scope="module")
def long_history():
    """One 40-item history (ids cycle through TITLES) and random causal
    attention for 2 layers x 4 heads."""
    L = 40
    h = torch.tensor([1 + i % 5 for i in range(L)])
    g = torch.Generator().manual_seed(0)
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    attn = [torch.softmax(torch.randn(1, 4, L, L, generator=g).masked_fill(~causal, -torch.inf), -1)
            for _ in range(2)]
    return h, attn


def test_history_heatmap_drops_padding_and_blanks_the_future(sasrec_attn):
    h, attn = sasrec_attn
    ax = history_heatmap(attn[0][0, 1], h[0], TITLES)
    img = _image(ax)  # (4, 4): padding columns are gone
    assert img.shape == (4, 4)
    assert np.isnan(img[np.triu_indices(4, 1)]).all()  # the causal triangle
    low = img[np.tril_indices(4)]
    assert np.allclose(low, attn[0][0, 1, 2:, 2:].numpy()[np.tril_indices(4)])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0].startswith("1. Star Wars") and labels[0].endswith("\u2026")
    assert labels[1] == "2. Heat (1995)"
    assert f"1. {LONG}" in _notes(ax.figure)[0]  # the full title of the cut label


def test_history_heatmap_window_keeps_history_numbering(sasrec_attn):
    h, attn = sasrec_attn
    ax = history_heatmap(attn[1][1, 0], h[1], TITLES, last=2)
    assert _image(ax).shape == (2, 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4. Heat (1995)",
                                                              "5. " + LONG[:23] + "\u2026"]


def test_history_heatmap_errors_name_the_fix(sasrec_attn):
    h, attn = sasrec_attn
    with pytest.raises(ValueError, match="one \\(L, L\\) matrix"):
        history_heatmap(attn[0][0], h[0], TITLES)
    with pytest.raises(ValueError, match="no title"):
        history_heatmap(attn[0][0, 0], h[0], TITLES[:3])
    with pytest.raises(ValueError, match="only padding"):
        real_positions(torch.zeros(4, dtype=torch.long))


def test_layer_head_grid_has_every_panel_and_one_shared_colour_bar(sasrec_attn):
    h, attn = sasrec_attn
    fig = layer_head_grid(attn, h[1], TITLES, user=1)
    panels, colorbar = fig.axes[:-1], fig.axes[-1]
    assert len(panels) == 3 * 2
    assert {ax.images[0].get_clim() for ax in panels} == {panels[0].images[0].get_clim()}
    assert panels[0].images[0].get_clim()[0] == 0.0
    assert [ax.get_title() for ax in panels[:3]] == ["layer 1, head 1", "layer 1, head 2",
                                                     "layer 2, head 1"]
    assert np.allclose(np.nan_to_num(_image(panels[5])),
                       np.tril(attn[2][1, 1, 1:, 1:].numpy()))
    assert colorbar.get_label() == "<colorbar>" and len(fig.axes) == 7
    with pytest.raises(ValueError, match="outside the batch"):
        layer_head_grid(attn, h[0], TITLES, user=2)


def test_din_bars_show_each_candidates_weights():
    torch.manual_seed(0)
    model = build("din", 5, maxlen=6, d_model=8).eval()
    h = torch.tensor([[0, 0, 1, 2, 3, 4]])
    cands = torch.tensor([[5, 2]])
    with torch.no_grad():
        _, w = model.score(h, cands, return_attention=True)  # (1, 2, 6)
    fig = din_bars(w[0], h[0], TITLES, cands[0])
    assert len(fig.axes) == 2
    for c, ax in enumerate(fig.axes):
        widths = [p.get_width() for p in ax.patches]
        assert np.allclose(widths, w[0, c, 2:].numpy())
    assert "Alien" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="candidates, L"):
        din_bars(w[0, :, :4], h[0], TITLES, cands[0])


def test_history_labels_truncate_and_note_full_titles():
    labels, notes = history_labels([1, 2], TITLES, max_label_chars=12, start=7)
    assert labels == ["7. Star Wars: \u2026", "8. Heat (1995)"]
    assert notes == [f"7. {LONG}"]


def test_grid_columns_are_numbered_and_notes_are_readable(sasrec_attn):
    h, attn = sasrec_attn
    fig = layer_head_grid(attn, h[0], TITLES, user=0)
    bottom = fig.axes[-2]  # last panel, bottom row
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["1", "2", "3", "4"]
    texts, sizes = _notes(fig)
    assert texts[0].startswith("full titles") and f"1. {LONG}" in texts
    assert min(sizes) >= 9 and NOTE_FONTSIZE >= 9
    assert fig.axes[-1].get_ylabel() == "attention weight"  # the shared colour bar


@pytest.mark.parametrize("case", ["short titles", "40 items, 4 heads"])
def test_grid_tick_labels_do_not_overlap_and_sit_on_the_outer_axes(case, sasrec_attn,
                                                                   long_history):
    if case == "short titles":
        h, attn = sasrec_attn
        fig, n_rows, n_cols, n = layer_head_grid(attn, h[0], TITLES), 3, 2, 4
    else:
        h, attn = long_history
        fig, n_rows, n_cols, n = layer_head_grid(attn, h, TITLES, last=None), 2, 4, 40
    fig.canvas.draw()
    panels = fig.axes[:-1]
    assert len(panels) == n_rows * n_cols
    for k, ax in enumerate(panels):
        bottom, left = k >= (n_rows - 1) * n_cols, k % n_cols == 0
        xs = [t for t in ax.get_xticklabels() if t.get_text()]
        ys = [t for t in ax.get_yticklabels() if t.get_text()]
        assert bool(xs) == bottom and bool(ys) == left, f"panel {k}: labels on inner axes"
        assert bool(ax.get_xlabel()) == bottom and bool(ax.get_ylabel()) == left
        assert not _collisions(xs, horizontal=True), f"panel {k}: x tick labels overlap"
        assert not _collisions(ys, horizontal=False), f"panel {k}: y tick labels overlap"
        if bottom:  # the most recent item is always labelled
            assert xs[-1].get_text() == str(n)
        if left:
            assert ys[-1].get_text().startswith(f"{n}. ")


def test_grid_grows_with_panels_and_items(sasrec_attn, long_history):
    h, attn = sasrec_attn
    small = layer_head_grid(attn[:1], h[0], TITLES).get_size_inches()  # 1 x 2 panels
    tall = layer_head_grid(attn, h[0], TITLES).get_size_inches()  # 3 x 2
    assert tall[1] > 2.5 * small[1] and tall[0] == pytest.approx(small[0], rel=0.05)
    h40, attn40 = long_history
    few = layer_head_grid(attn40, h40, TITLES, last=5).get_size_inches()
    many = layer_head_grid(attn40, h40, TITLES, last=30).get_size_inches()
    assert (many > few).all() and many[0] <= 16  # bigger, within a wide screen

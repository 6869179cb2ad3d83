"""The attention explorer without a browser (recattn_lessons.viz.explorer, lesson 06)."""

import base64
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recattn_lessons.data.synthetic import final_histories, make_planted  # noqa: E402
from recattn_lessons.faithfulness import occlusion  # noqa: E402
from recattn_lessons.models import build  # noqa: E402
from recattn_lessons.viz.explorer import AttentionExplorer, explore  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def setup():
    data = make_planted(n_users=12, seed=2)
    torch.manual_seed(0)
    model = build("sasrec", data.n_items, maxlen=24, d_model=16, n_heads=2, n_blocks=2,
                  dropout=0.2)
    h, _, _ = final_histories(data, 24)
    h[3, :-2] = 0  # a user with only two items
    return model, h, data.titles


def test_view_is_cached_and_consistent_with_the_model(setup):
    model, h, titles = setup
    ex = AttentionExplorer(model, h, titles, top_k=5)
    v = ex.view(1)
    assert ex.view(1) is v  # computed once
    n = int((h[1] != 0).sum())
    assert v.items.tolist() == h[1][h[1] != 0].tolist()
    assert v.attn.shape == (2, 2, n, n) and v.drivers.shape == (5, n)
    assert set(v.recs.tolist()).isdisjoint(set(v.items.tolist()) | {0})  # unseen only
    assert list(v.rec_scores) == sorted(v.rec_scores, reverse=True)
    model.eval()
    with torch.no_grad():
        scores = model.score(h[1:2])[0]
        expected = occlusion(model, h[1:2], torch.as_tensor(v.recs)[None])[0][:, h[1] != 0]
    assert scores[v.recs[0]].item() == pytest.approx(v.rec_scores[0], rel=1e-5)
    assert torch.allclose(torch.as_tensor(v.drivers).float(), expected, atol=1e-5)


def test_explorer_leaves_the_models_mode_alone(setup):
    model, h, titles = setup
    model.train()
    AttentionExplorer(model, h, titles).view(2)
    assert model.training
    model.eval()


def test_widget_updates_the_view_fast_on_every_control(setup):
    model, h, titles = setup
    w = AttentionExplorer(model, h, titles, users=[0, 1, 3]).widget()
    seen = {w.heatmap.value}
    for control, value in ((w.head, 1), (w.layer, 0), (w.rec, 2), (w.user, 3)):
        t = time.process_time()  # CPU time: not inflated by other jobs on a busy machine
        control.value = value
        assert time.process_time() - t < 1.0
        assert w.heatmap.value not in seen, f"changing {control.description} changed nothing"
        seen.add(w.heatmap.value)
    assert 'data-user="3"' in w.heatmap.value and 'data-head="1"' in w.heatmap.value
    assert w.rec.value == 0  # a new user starts at their first recommendation
    assert "Top-10 for user 3 (2 items)" in w.info.value
    assert "updated in" in w.status.value


def test_without_a_widget_front_end_there_is_a_picture_and_a_summary(setup):
    model, h, titles = setup
    w = AttentionExplorer(model, h, titles).widget()
    bundle = w._repr_mimebundle_()
    assert bundle["text/plain"].startswith("AttentionExplorer: user 0")
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_explore_outside_ipython_returns_a_static_figure(setup):
    model, h, titles = setup
    fig = explore(model, h, titles, users=[5])
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # heatmap, its colour bar, 2 bars


def test_bad_inputs_say_what_to_fix(setup):
    model, h, titles = setup
    with pytest.raises(ValueError, match="LongTensor"):
        AttentionExplorer(model, h.float(), titles)
    with pytest.raises(ValueError, match="bad: \\[99\\]"):
        AttentionExplorer(model, h, titles, users=[0, 99])
    ex = AttentionExplorer(model, h, titles)
    with pytest.raises(ValueError, match="head must be"):
        ex.figure(0, head=5)
    with pytest.raises(ValueError, match="rec must be"):
        ex.figure(0, rec=10)


def test_html_view_has_a_colour_scale_and_a_key_to_the_bars(setup):
    model, h, titles = setup
    ex = AttentionExplorer(model, h, titles)
    page = ex.heatmap_html(0, rec=1)
    legend = page.split('class="recattn-legend"')[1]
    assert "linear-gradient" in legend and "attention weight 0" in legend
    v = ex.view(0)
    w = v.attn[-1].mean(0)
    assert f"longest bar = {w[-1, -ex.last:].max():.2f}" in legend
    assert "score of #2 drops" in legend


def test_static_figure_has_a_colour_scale_and_a_key_to_every_bar_colour(setup):
    from matplotlib.colors import to_hex

    model, h, titles = setup
    fig = AttentionExplorer(model, h, titles).figure(0, rec=1)
    heat, attn_ax, drop_ax = (ax for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert heat.images[0].colorbar.ax in fig.axes  # the heatmap's colour scale
    for ax, words in ((attn_ax, ["final query"]), (drop_ax, ["#2", "helps", "hurts"])):
        legend = ax.get_legend()
        assert legend is not None, "a bar panel without a key"
        text = " ".join(t.get_text() for t in [legend.get_title()] + legend.get_texts())
        assert all(w in text for w in words), text
        assert min(t.get_fontsize() for t in legend.get_texts()) >= 9
        keyed = {to_hex(p.get_facecolor()) for p in legend.get_patches()}
        drawn = {to_hex(p.get_facecolor()) for p in ax.patches}
        assert drawn <= keyed, f"bar colours {drawn - keyed} have no legend entry"
    fig.canvas.draw()
    boxes = sorted((t.get_window_extent() for t in heat.get_xticklabels() if t.get_text()),
                   key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))  # column labels do not overlap

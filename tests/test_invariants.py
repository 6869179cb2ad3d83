"""Tests for recattn_lessons.invariants (lesson 01)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recattn_lessons.attention import causal_mask, scaled_dot_product_attention
from recattn_lessons.invariants import check_attention

# The source article's worked example (seed 000, sections 4.3 and 5.4).
V = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
SRC_SCORES = np.array([[0.3, 0.6, 0.9], [0.7, 1.4, 2.1], [1.1, 2.2, 3.3]])
SRC_WEIGHTS = np.array([[0.24, 0.39, 0.37], [0.35, 0.35, 0.30], [0.30, 0.30, 0.40]])
SRC_CONTEXT = np.array([[0.024, 0.078, 0.111], [0.140, 0.175, 0.210], [0.210, 0.240, 0.280]])


def _reference(seed, B=2, Lq=4, Lk=5, d=3, dv=2, masked=True):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Lq, d, generator=g, dtype=torch.float64)
    k = torch.randn(B, Lk, d, generator=g, dtype=torch.float64)
    v = torch.randn(B, Lk, dv, generator=g, dtype=torch.float64)
    mask = torch.rand(B, Lq, Lk, generator=g) > 0.4 if masked else None
    if masked:
        mask[0, 0] = False  # one fully-masked row
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    return dict(weights=w, output=out, scores=q @ k.mT, values=v, mask=mask, queries=q, keys=k)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), masked=st.booleans())
def test_reference_attention_passes_everything(seed, masked):
    report = check_attention(**_reference(seed, masked=masked))
    assert report.ok, str(report)
    expected_skips = set() if masked else {"masked positions are 0"}
    assert {c.name for c in report.checks if c.passed is None} == expected_skips


def test_source_weights_break_monotonicity_but_sum_to_one():
    report = check_attention(SRC_WEIGHTS, scores=SRC_SCORES, atol=0.005)
    assert report["rows sum to 1"].passed
    assert report.failed == ["weights grow with scores"]
    assert "row 0: key 2" in report["weights grow with scores"].detail


def test_source_context_breaks_product_and_hull():
    report = check_attention(SRC_WEIGHTS, output=SRC_CONTEXT, values=V, atol=0.005)
    assert set(report.failed) == {"output = weights @ values",
                                  "output inside convex hull of values"}
    assert "0.024 is below the minimum 0.1" in report["output inside convex hull of values"].detail
    # the hull check alone (no weights) already proves the context impossible
    assert check_attention(None, output=SRC_CONTEXT, values=V).failed == [
        "output inside convex hull of values"]


def test_source_shapes_1x5_query_cannot_meet_3x3_keys():
    report = check_attention(SRC_WEIGHTS, queries=[[0.1, 0.2, 0.3, 0.4, 0.5]], keys=np.ones((3, 3)))
    assert report.failed == ["shapes"]
    assert "(1, 5) and k (3, 3) must share their last dim" in report["shapes"].detail
    assert all(c.passed is None for c in report.checks[1:])


def test_each_broken_invariant_is_flagged():
    ref = _reference(3)
    w, m = ref["weights"].clone(), ref["mask"]
    bad = dict(ref, weights=w * 1.5)
    assert "rows sum to 1" in check_attention(**bad).failed
    leaked = w.clone()
    i = tuple(torch.nonzero(~m[1])[0].tolist())
    leaked[1][i] = 0.1
    assert "masked positions are 0" in check_attention(**dict(ref, weights=leaked)).failed
    neg = w.clone()
    neg[1, 1, 0] = -0.2
    assert "weights finite and non-negative" in check_attention(**dict(ref, weights=neg)).failed
    nan = w.clone()
    nan[0, 0] = float("nan")  # what a plain softmax gives a fully-masked row
    assert "NaN" in check_attention(**dict(ref, weights=nan))["weights finite and non-negative"].detail
    elementwise = dict(ref, output=(w[..., :2] * ref["values"][..., :4, :]))
    assert "output = weights @ values" in check_attention(**elementwise).failed


def test_equal_scores_need_equal_weights():
    report = check_attention([[0.6, 0.4]], scores=[[1.0, 1.0]])
    assert report.failed == ["weights grow with scores"]


def test_shape_and_type_errors():
    assert check_attention(np.eye(3), scores=np.eye(2)).failed == ["shapes"]
    assert check_attention(np.eye(3), values=np.ones((2, 4))).failed == ["shapes"]
    assert check_attention(np.eye(3), mask=np.ones((2, 2), bool)).failed == ["shapes"]
    with pytest.raises(TypeError, match="mask must be boolean"):
        check_attention(np.eye(3), mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="nothing to check"):
        check_attention(None, output=np.eye(3))


def test_report_renders_as_text_and_html():
    report = check_attention(SRC_WEIGHTS, output=SRC_CONTEXT, scores=SRC_SCORES, values=V,
                             mask=np.ones((3, 3), bool), atol=0.005)
    text, html = str(report), report._repr_html_()
    assert text.startswith("InvariantReport: 3 invariant(s) broken")
    assert text.count("FAIL") == 3 and text.count("PASS") == 4
    assert html.count("<tr>") == 1 + len(report.checks) and "FAIL" in html
    with pytest.raises(AssertionError, match="weights grow with scores"):
        report.raise_if_failed()


def test_causal_mask_reference_in_float32():
    x = torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(0))
    out, w = scaled_dot_product_attention(x, x, x, mask=causal_mask(6))
    assert check_attention(w, out, x @ x.mT, x, causal_mask(6)).ok


def test_keras_attended_values_are_not_weights():
    # tf.keras Attention()([Q, K]) returns softmax(Q K^T) @ K (value = K), not weights:
    # read as weights, its rows do not sum to 1.
    q = torch.tensor(V)
    k = torch.tensor([[1.0, 1, 1], [2, 2, 2], [3, 3, 3]], dtype=torch.float64)
    attended, weights = scaled_dot_product_attention(q, k, k, scale=1.0)
    assert check_attention(weights, output=attended, values=k).ok
    assert "rows sum to 1" in check_attention(attended, scores=q @ k.T).failed

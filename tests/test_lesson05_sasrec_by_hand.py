"""Lesson 05's "SASRec in the open" computes what ``models.SASRec`` computes (issue 14).

The notebook's one-function forward pass is the teaching path; this test
runs that very cell (read from the notebook, not copied) against the class
for several shapes, both attention paths and left-padded histories, so the
lesson and the model cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from recattn_lessons.models.sasrec import Block, SASRec, SASRecConfig

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "05_full_recommender.ipynb"


@pytest.fixture(scope="module")
def by_hand():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    src = next("".join(c["source"]) for c in cells
               if c["cell_type"] == "code" and "def sasrec_scores_by_hand" in "".join(c["source"]))
    namespace = {"torch": torch, "F": F}
    exec(compile(src, f"{NOTEBOOK.name}: sasrec_scores_by_hand", "exec"), namespace)
    return namespace["sasrec_scores_by_hand"]


def model(seed=0, **changes) -> SASRec:
    cfg = dict(n_items=40, maxlen=8, d_model=16, n_heads=2, n_blocks=2, d_ff=24)
    torch.manual_seed(seed)
    m = SASRec(SASRecConfig(**{**cfg, **changes})).eval()
    with torch.no_grad():  # move LayerNorm and bias off their init (1, 0) so they matter
        for p in m.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m


HISTORY = torch.tensor([[0, 0, 0, 0, 0, 7, 3, 5],  # left padding
                        [1, 2, 3, 4, 5, 6, 7, 8],  # full window
                        [0, 0, 0, 0, 0, 0, 0, 9],  # a single item
                        [40, 39, 38, 1, 1, 1, 2, 3]])  # repeats, the highest id


@pytest.mark.parametrize("attention", ["fused", "reference"])
@pytest.mark.parametrize("n_heads,n_blocks", [(1, 1), (2, 2), (4, 3)])
def test_hand_forward_equals_the_class(by_hand, attention, n_heads, n_blocks):
    m = model(n_heads=n_heads, n_blocks=n_blocks, attention=attention)
    with torch.no_grad():
        for hist in (HISTORY, HISTORY[:, -5:]):  # L = maxlen and L < maxlen
            got, want = by_hand(m, hist), m.score(hist)
            assert got.shape == want.shape == (len(hist), 41)
            assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()


def test_the_comparison_would_catch_a_post_ln_block(by_hand, monkeypatch):
    """Were the class's blocks post-LN, LN(x + g(x)), the hand version must disagree."""
    def post_ln(self, x, mask, real, capture=False):
        out, w = self.attn(x, mask=mask, fused=self.fused)
        x = self.ln1(x + self.drop(out))
        x = self.ln2(x + self.drop(self.ffn(x)))
        return x * real[..., None], w

    m = model()
    with torch.no_grad():
        monkeypatch.setattr(Block, "forward", post_ln)
        diff = (by_hand(m, HISTORY) - m.score(HISTORY)).abs().max()
    assert diff > 1e-2

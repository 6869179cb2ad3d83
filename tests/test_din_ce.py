"""DIN with the full-softmax loss (issue 12): the running-sum softmax equals
scoring every item after every prefix of the window, one prefix at a time."""

import pytest
import torch
import torch.nn.functional as F

from recattn_lessons import models
from recattn_lessons.data import Batch


@pytest.mark.parametrize("attention", ["dot", "mlp"])
def test_causal_logits_equal_scoring_each_prefix(attention):
    torch.manual_seed(0)
    m = models.build("din", 30, attention=attention, d_model=8, maxlen=6, dropout=0.0, loss="ce").double()
    x = torch.tensor([[0, 0, 3, 5, 7, 2], [1, 4, 4, 9, 30, 11]])
    logits = m.causal_logits(x)  # (B, L, N+1)
    for b in range(2):
        for t in range(6):
            if x[b, t] == 0:
                continue
            hist = torch.zeros(1, 6, dtype=torch.long)
            hist[0, 6 - (t + 1):] = x[b, :t + 1]  # the prefix, left-padded
            assert torch.allclose(logits[b, t], m.score(hist)[0], atol=1e-9)


def test_ce_loss_is_the_full_softmax_over_items_and_needs_no_negatives():
    torch.manual_seed(1)
    m = models.build("din", 20, attention="dot", d_model=8, maxlen=5, dropout=0.0, loss="ce").double()
    assert m.n_negatives == 0  # the training loop samples nothing for it
    x = torch.tensor([[0, 2, 3, 4, 5]])
    y = torch.tensor([[0, 3, 4, 5, 6]])
    loss = m.loss(Batch(x, y, torch.zeros(1, dtype=torch.long)))
    lg = m.causal_logits(x)[0, 1:, 1:]  # positions with a target, no padding column
    assert loss.item() == pytest.approx(F.cross_entropy(lg, y[0, 1:] - 1).item())
    loss.backward()
    assert m.W_q.weight.grad.abs().sum() > 0  # the attention is trained too


def test_sampled_stays_the_class_default_and_bad_loss_is_named():
    assert models.build("din", 10).cfg.loss == "sampled"
    with pytest.raises(ValueError, match="loss"):
        models.build("din", 10, loss="bce")

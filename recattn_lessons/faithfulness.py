"""Is attention an explanation? Attribution methods and a planted-cause check (lesson 06).

Four ways to say which history position "caused" a recommendation, each
returning one score per position, ``(B, L)`` (higher = more responsible):

- :func:`attention_attribution` the weights the final query puts on each
  position (one layer, one head or the mean over heads);
- :func:`attention_rollout` attention multiplied through the layers with
  the residual path added (Abnar & Zuidema, 2020);
- :func:`gradient_x_input` gradient of the target's score with respect to
  the item embeddings, times those embeddings, summed over features;
- :func:`occlusion` how much the target's score drops when one item is
  removed from the history.

:func:`top1_hit_rate` says how often the top-scored position is the planted
cause (``recattn_lessons.data.synthetic``); :func:`uniform_top1` is the
chance level. Jain & Wallace (2019, "Attention is not Explanation") showed
attention weights often disagree with gradient- and removal-based
importance; Wiegreffe & Pinter (2019, "Attention is not not Explanation")
answered that whether attention explains depends on the model and the test.
Here we simply measure it, on data where the true cause is known.

Models follow the course's contract (``recattn_lessons.models``):
``forward(history, return_attention=True) -> (hidden, [(B, H, L, L), ...])``
and ``score(history, candidates) -> (B, C)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from recattn_lessons.progress import tqdm

from recattn_lessons.data.synthetic import (PlantedSequences, SyntheticConfig,
                                             final_histories, make_planted)

__all__ = ["attention_attribution", "attention_rollout", "gradient_x_input", "occlusion",
           "remove_position", "top1_hit_rate", "uniform_top1", "attributions", "CheckConfig",
           "train_planted", "run_check"]


def _check_history(history: Tensor) -> None:
    if not isinstance(history, Tensor) or history.dim() != 2 or history.dtype != torch.long:
        got = tuple(history.shape) if isinstance(history, Tensor) else type(history).__name__
        raise ValueError(
            f"history must be a LongTensor (B, L) of item ids left-padded with 0, "
            f"got {got}; for one user use history[None]"
        )


@torch.no_grad()
def _attention(model: nn.Module, history: Tensor) -> list[Tensor]:
    out = model(history, return_attention=True)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(
            f"{type(model).__name__}(history, return_attention=True) must return "
            f"(hidden, attn); this model does not expose self-attention weights"
        )
    return list(out[1])


def attention_attribution(model: nn.Module, history: Tensor, layer: int = -1,
                          head: int | None = None) -> Tensor:
    """Weights of the final query (the one that predicts the next item), ``(B, L)``.

    ``layer`` indexes the model's layers (-1 = last); ``head=None`` averages
    over heads.
    """
    _check_history(history)
    a = _attention(model, history)[layer]  # (B, H, L, L)
    a = a.mean(dim=1) if head is None else a[:, head]  # (B, L, L)
    return a[:, -1, :]  # (B, L): query at the last position


def attention_rollout(model: nn.Module, history: Tensor, residual: bool = True) -> Tensor:
    """Attention rollout of the final query, ``(B, L)`` (Abnar & Zuidema, 2020).

    Per layer, average the heads and (with ``residual``) add the identity for
    the skip connection: A' = (A + I) / 2, renormalised by rows. The product
    A'_n ... A'_1 says how much each input position flows into the last
    query through every path, not just the last layer's weights.
    """
    _check_history(history)
    attn = _attention(model, history)
    B, _, L, _ = attn[0].shape
    eye = torch.eye(L, device=history.device, dtype=attn[0].dtype)  # (L, L), the model's dtype
    flow = eye.expand(B, L, L)  # (B, L, L)
    for a in attn:
        a = a.mean(dim=1)  # (B, L, L)
        if residual:
            a = 0.5 * a + 0.5 * eye
            a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        flow = a @ flow  # (B, L, L)
    return flow[:, -1, :]  # (B, L)


def _target_scores(model: nn.Module, history: Tensor, target: Tensor) -> Tensor:
    target = torch.as_tensor(target, device=history.device)
    if target.shape != (history.shape[0],):
        raise ValueError(
            f"target must hold one item id per history, shape ({history.shape[0]},), "
            f"got {tuple(target.shape)}"
        )
    return model.score(history, target[:, None])[:, 0]  # (B,)


def gradient_x_input(model: nn.Module, history: Tensor, target: Tensor) -> Tensor:
    """Gradient x input of the target's score per history position, ``(B, L)``.

    Hooks the ``nn.Embedding`` that reads ``history`` (the item embedding),
    then sums ``grad * embedding`` over features. Positive = pushes the
    target's score up. The model's parameters are left untouched (their
    ``.grad`` is restored afterwards).
    """
    _check_history(history)
    captured: list[Tensor] = []

    def hook(module, inputs, output):
        if inputs and isinstance(inputs[0], Tensor) and inputs[0].shape == history.shape \
                and torch.equal(inputs[0], history):
            output.retain_grad()
            captured.append(output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Embedding)]
    saved = {p: p.grad for p in model.parameters()}
    try:
        with torch.enable_grad():
            scores = _target_scores(model, history, target)  # (B,)
            if not captured:
                raise TypeError(
                    f"{type(model).__name__} did not look history up in an nn.Embedding; "
                    f"gradient x input needs the item embedding of the history"
                )
            emb = captured[0]  # (B, L, D)
            scores.sum().backward()
        return (emb.grad * emb).sum(-1).detach()  # (B, L)
    finally:
        for h in handles:
            h.remove()
        for p, g in saved.items():
            p.grad = g


def remove_position(history: Tensor, j: Tensor) -> Tensor:
    """``history[b]`` without its item at column ``j[b]``, shifted right and
    left-padded again, ``(n, L)``: "what if the user had not watched it".

    Removing (rather than overwriting with padding) keeps the most recent
    item in the last column, where SASRec reads its prediction.
    """
    n, L = history.shape
    p = torch.arange(L, device=history.device)[None, :]  # (1, L)
    src = p - 1 + (p > j[:, None]).long()  # (n, L): source column of each slot
    out = history.gather(1, src.clamp(min=0))  # (n, L)
    return out.masked_fill(src < 0, 0)


@torch.no_grad()
def occlusion(model: nn.Module, history: Tensor, candidates: Tensor) -> Tensor:
    """Score drop of each candidate when each history item is removed.

    Args:
        history: ``(B, L)`` left-padded item ids.
        candidates: ``(B,)`` (one target each) or ``(B, C)``.

    Returns:
        ``(B, L)`` or ``(B, C, L)``: score(full) - score(without item j)
        (see :func:`remove_position`); zero at padding. One forward pass per
        real position, batched.
    """
    _check_history(history)
    single = candidates.dim() == 1
    cands = candidates[:, None] if single else candidates  # (B, C)
    if cands.shape[0] != history.shape[0]:
        raise ValueError(f"candidates has {cands.shape[0]} rows for {history.shape[0]} histories")
    B, L = history.shape
    full = model.score(history, cands)  # (B, C)
    drops = full.new_zeros(B, cands.shape[1], L)  # (B, C, L), the model's dtype and device
    rows = (history != 0).nonzero()  # (n, 2): (user, column) of every real item
    for chunk in rows.split(4096):
        b, j = chunk[:, 0], chunk[:, 1]
        drops[b, :, j] = full[b] - model.score(remove_position(history[b], j), cands[b])
    return drops[:, 0] if single else drops


def top1_hit_rate(attribution: Tensor, cause_index: Tensor, history: Tensor) -> float:
    """Share of users whose top-attributed real position is the planted cause.

    Padding positions never win. Ties count as a hit only for the share of
    tied positions (a tie between k positions that includes the cause scores
    1/k), so a constant attribution scores exactly the chance level.
    """
    _check_history(history)
    if attribution.shape != history.shape:
        raise ValueError(f"attribution {tuple(attribution.shape)} must match history "
                         f"{tuple(history.shape)}: one score per position")
    a = attribution.double().masked_fill(history == 0, float("-inf"))  # (B, L)
    best = a.max(dim=1, keepdim=True).values
    top = a == best  # (B, L): every position tied for first
    hit = top.gather(1, cause_index.view(-1, 1).to(history.device)).squeeze(1)
    return (hit.double() / top.sum(1).double()).mean().item()


def uniform_top1(history: Tensor) -> float:
    """Chance level: a random real position is the cause with probability 1 / length."""
    _check_history(history)
    return (1.0 / (history != 0).sum(1).double()).mean().item()


@dataclass(frozen=True)
class CheckConfig:
    """The planted-cause check (defaults: ~20 s on a laptop CPU)."""

    data: SyntheticConfig = SyntheticConfig()  # training users; eval users use seed + 1
    n_eval_users: int = 1000  # fresh users whose final item we explain
    model: str = "sasrec"  # sasrec (softmax attention) or hstu (pointwise, lesson 08)
    n_blocks: int = 1  # attention blocks (2+ shows attention drifting away)
    n_heads: int = 1  # attention heads per block
    d_model: int = 32  # embedding size
    dropout: float = 0.1
    maxlen: int = 20  # history length L (>= data.max_len - 1 keeps whole sequences)
    epochs: int = 20  # fixed: no early stopping on planted data
    batch_size: int = 64
    lr: float = 5e-3  # AdamW learning rate
    seed: int = 0  # model init, dropout and batch order
    # float64: the same digits on every CPU (lesson 06 prints them); float32 training
    # drifts with the CPU's SIMD width, see TrainConfig.quick
    dtype: str = "float64"

    @classmethod
    def quick(cls, **changes) -> "CheckConfig":
        """A few seconds on a CPU: fewer users and epochs (lesson 06, tests)."""
        base = dict(data=SyntheticConfig(n_users=1000), n_eval_users=300, epochs=6)
        return cls(**{**base, **changes})


def train_planted(cfg: CheckConfig, data: PlantedSequences, progress: bool = True) -> nn.Module:
    """Train ``cfg.model`` (SASRec or HSTU) on planted sequences for ``cfg.epochs`` epochs.

    Uses ``models.build``, the windows and batches of ``data.batching`` and
    the model's own loss. Unlike ``train.run`` there is no validation-based
    early stopping: the held-out item of a planted user is mostly a random
    filler, so validation scores would only measure noise.
    """
    from recattn_lessons.data.batching import iterate_batches, sliding_windows
    from recattn_lessons.models import build

    torch.manual_seed(cfg.seed)  # initialisation and dropout
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order
    extra = {"d_ff": cfg.d_model} if cfg.model == "sasrec" else {}  # HSTU has no feed-forward
    model = build(cfg.model, data.n_items, maxlen=cfg.maxlen, d_model=cfg.d_model,
                  n_heads=cfg.n_heads, n_blocks=cfg.n_blocks, dropout=cfg.dropout,
                  **extra).to(getattr(torch, cfg.dtype))
    windows = sliding_windows(data.sequences, cfg.maxlen)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
    model.train()
    for _ in tqdm(range(cfg.epochs), desc=f"planted {cfg.model} epochs", disable=not progress):
        for batch in iterate_batches(windows, cfg.batch_size, gen):
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def attributions(model: nn.Module, history: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Every method for the final query, ``{name: (B, L)}``.

    ``attention`` (last layer, mean over heads), ``attention_layer{i}``,
    ``rollout``, ``gradient`` (|gradient x input|: its sign is unstable, see
    lesson 06), ``gradient_signed``, ``occlusion``.
    """
    was_training = model.training
    model.eval()
    try:
        attn = _attention(model, history)
        out = {"attention": attn[-1].mean(1)[:, -1]}
        for i, a in enumerate(attn):
            out[f"attention_layer{i + 1}"] = a.mean(1)[:, -1]
        out["rollout"] = attention_rollout(model, history)
        gxi = gradient_x_input(model, history, target)
        out["gradient"], out["gradient_signed"] = gxi.abs(), gxi
        out["occlusion"] = occlusion(model, history, target)
        return out
    finally:
        model.train(was_training)


def run_check(cfg: CheckConfig = CheckConfig(), progress: bool = True,
              model: nn.Module | None = None) -> dict[str, float]:
    """Train (unless ``model`` is given) and measure top-1 hit rates.

    Returns ``{"<method>_top1": rate, ..., "uniform_top1": chance,
    "effect_hit1": share of eval users whose top-1 item is the effect}``.
    """
    train = make_planted(cfg.data)
    model = train_planted(cfg, train, progress) if model is None else model.eval()
    test = make_planted(replace(cfg.data, n_users=cfg.n_eval_users, seed=cfg.data.seed + 1))
    history, target, cause = final_histories(test, cfg.maxlen)
    with torch.no_grad():
        scores = model.score(history)  # (U, N + 1)
        scores[:, 0] = float("-inf")
    out = {f"{k}_top1": top1_hit_rate(v, cause, history)
           for k, v in attributions(model, history, target).items()}
    out["uniform_top1"] = uniform_top1(history)
    out["effect_hit1"] = (scores.argmax(1) == target).double().mean().item()
    return {k: round(v, 4) for k, v in out.items()}

"""Progressive hints for every exercise: ``hint(exercise_id, level)``.

Introduced with the interview exercises. Level 1 nudges, level 2 names the
tool, level 3 nearly gives the line; ``hint(id, 3)`` shows levels 1-3.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HINTS", "Hint", "hint"]

HINTS: dict[str, tuple[str, ...]] = {
    "softmax": (
        "softmax(x) = softmax(x - c) for any constant c along the axis.",
        "Pick c = x.amax(dim, keepdim=True): the largest exponent becomes exp(0) = 1.",
        "e = torch.exp(x - x.amax(dim, keepdim=True)); return e / e.sum(dim, keepdim=True)",
    ),
    "scaled_dot_product_attention": (
        "Scores are (..., Lq, Lk): one row per query. Scale them by 1/sqrt(d_k).",
        "Mask before the softmax: scores.masked_fill(~mask, float('-inf')).",
        "A fully-masked row is all -inf, so softmax gives NaN: replace it by 0 "
        "(weights.nan_to_num(0.0)) and the output row becomes 0 too.",
    ),
    "causal_padding_mask": (
        "Build two masks and combine them with &: causal (L, L) and padding (B, L).",
        "Causal: torch.ones(L, L, dtype=torch.bool).tril(). Padding with side='left': "
        "position j is real when j >= L - length.",
        "The padding mask hides keys: causal[None] & pad[:, None, :] -> (B, L, L).",
    ),
    "additive_attention": (
        "Project q and k into the hidden space: q @ W_q is (..., Lq, h), k @ W_k is (..., Lk, h).",
        "Broadcast to (..., Lq, Lk, h) with unsqueeze(-2) and unsqueeze(-3), then tanh.",
        "scores = torch.tanh(hq + hk) @ w_v -> (..., Lq, Lk); then the masked softmax "
        "and weights @ v as in scaled dot-product attention.",
    ),
    "multi_head_attention": (
        "Project with W_q, W_k, W_v, split D into H heads of Dh = D // H, attend per head.",
        "Split: x.view(B, L, H, Dh).transpose(1, 2) -> (B, H, L, Dh). Scale by sqrt(Dh).",
        "Merge: out.transpose(1, 2).reshape(B, Lq, D), then W_o. The weights are (B, H, Lq, Lk).",
    ),
    "hit_rate_at_k": (
        "Ranks are 0-based: the top K positions are ranks 0, 1, ..., K-1.",
        "A hit is rank < k; HR@K is the share of users with a hit.",
        "(ranks < k).float().mean().item()",
    ),
    "ndcg_at_k": (
        "One relevant item: the ideal DCG is 1, so NDCG = DCG = discount of its position.",
        "1-based position p = rank + 1 is discounted by 1 / log2(p + 1) = 1 / log2(rank + 2).",
        "torch.where(ranks < k, 1 / torch.log2(ranks.double() + 2), 0.0).mean().item()",
    ),
    "din_attention_pooling": (
        "Repeat the target along the history: target[:, None, :].expand_as(history).",
        "Features: torch.cat([h, t, h - t, h * t], -1) -> (B, L, 4D); scores = mlp(...).squeeze(-1).",
        "Masked softmax over L (padding -> -inf, empty history -> zeros), then "
        "(weights[:, :, None] * history).sum(1).",
    ),
    "weighted_sum_attention": (
        "The source never used its query: every score must involve it.",
        "scores = (inputs @ query[:, :, None]).squeeze(-1) / sqrt(D) -> (B, L).",
        "Or reuse scaled dot-product attention with query[:, None, :] as a length-1 query.",
    ),
    "sequence_attention_scores": (
        "Write the shapes: x (B, Lx, dx), W (dx, dy), y (B, Ly, dy); the result is (B, Lx, Ly).",
        "x @ W is (B, Lx, dy); it can meet y's features.",
        "x @ W @ y.transpose(-2, -1)",
    ),
    "text_attention_classifier": (
        "Embed tokens, score each position against a learned query vector, pool, classify.",
        "Mask pad positions (tokens == pad_id) with -inf before the softmax; an all-pad "
        "row must give zero weights, not NaN.",
        "nn.Embedding(V, D, padding_idx=pad_id); self.query = nn.Parameter(torch.randn(D) / D**0.5); "
        "scores = h @ self.query / sqrt(D).",
    ),
    "patch_attention_classifier": (
        "Cut the image into (image_size // patch_size)**2 patches and embed each one.",
        "A Conv2d with kernel_size = stride = patch_size embeds all patches at once: "
        "(B, C, H, W) -> (B, D, H/p, W/p) -> flatten(2).transpose(1, 2) -> (B, N, D).",
        "Add a learned position embedding (N, D), score patches against a learned query, "
        "softmax, pool, then nn.Linear(D, n_classes).",
    ),
    "multimodal_attention_recommender": (
        "Project text and image features to d_model and fuse them per item (e.g. sum).",
        "Every candidate attends over the history: q (B, N, D), k = v (B, L, D), mask (B, 1, L).",
        "Score = (user vector for that candidate * candidate vector).sum(-1) -> (B, N).",
    ),
    "batched_candidate_scoring": (
        "The loop body treats one candidate as a length-1 query; stack them as N queries.",
        "q = candidates[None].expand(B, N, D); attention over history with mask[:, None, :].",
        "user = softmax(q @ h^T / sqrt(D)) @ h -> (B, N, D); scores = (user * q).sum(-1).",
    ),
    "bug_keras_attention": (
        "Read the Keras docs: what does Attention()([Q, K]) use as value and key?",
        "Check the formula the article states next to the code: is there a 1/sqrt(d_k)?",
        "weights = softmax(Q @ K^T / sqrt(d_k)); context = weights @ V (a matrix product).",
    ),
    "bug_simple_attention": (
        "Run the source's code with two different query_seq: does the output change?",
        "Score each input position against each query: (B, Lq, D) x (B, L, D) -> (B, Lq, L).",
        "Project the queries (and keys) with nn.Linear, scale by sqrt(D), masked softmax, "
        "then weights @ input_seq -> (B, Lq, D).",
    ),
    "bug_attention_scores": (
        "Run it: torch.bmm wants 3-D tensors, and query_seq.unsqueeze(2) is 4-D.",
        "One row of scores per query: the result is (B, Lq, L).",
        "torch.bmm(query_seq, input_seq.transpose(1, 2))",
    ),
    "bug_multimodal_fusion": (
        "Print the shapes: (1, 20) weights cannot multiply (10, 30) items.",
        "Concatenating the two softmaxes gives 2N weights that sum to 2; average them instead.",
        "Scale each modality by 1/sqrt(its d), softmax each over items, average, then "
        "weights @ torch.cat((item_text, item_image), 1).",
    ),
    "online_softmax": (
        "Keep two numbers per row, a running max m (start at -inf) and a running sum s of "
        "exp(x - m) (start at 0), and visit blocks x[..., i:i + block_size] for i in "
        "range(0, L, block_size).",
        "When a block raises the max to m_new, the old terms were exp(x - m_old): rescale "
        "them, s = s * exp(m_old - m_new) + exp(block - m_new).sum(-1). At the end the "
        "weights are exp(x - m) / s.",
        "While m is still -inf (a masked prefix) shift by 0 instead: "
        "c = torch.where(m_new == float('-inf'), 0.0, m_new); a row whose s ends at 0 gets "
        "zero weights: torch.where(s > 0, p, 0.0).",
    ),
    "kv_cache_attention_step": (
        "Append first, then attend: the new token may see itself (causal attention "
        "includes the diagonal).",
        "K = torch.cat([K_prev, k_t], dim=2) -> (B, H, T + 1, d_k); with cache None, "
        "K, V = k_t, v_t.",
        "out_t = softmax(q_t @ K.transpose(-2, -1) / sqrt(d_k), dim=-1) @ V -> (B, H, 1, d_v); "
        "no mask (and no is_causal=True): the one query may see every cached key.",
    ),
    "multi_query_attention": (
        "Only the queries have n_heads heads; keys and values have n_kv_heads heads of "
        "d_head = d_model // n_heads each.",
        "W_k = nn.Linear(d_model, n_kv_heads * d_head); view the keys as (B, L, n_kv_heads, "
        "d_head).transpose(1, 2) -> (B, n_kv_heads, L, d_head).",
        "k.repeat_interleave(n_heads // n_kv_heads, dim=1) -> (B, n_heads, L, d_head) (query "
        "head h uses K/V head h // group), then attention per head, merge, W_o.",
    ),
    "pointwise_attention": (
        "No softmax and no 1/sqrt(d_q): every weight is SiLU(score + bias) / n on its own, "
        "with the n you are given (a constant, not the number of items in the row).",
        "scores = q @ k.transpose(-2, -1) + bias -> (B, H, L, L); A = F.silu(scores) / n.",
        "Mask by multiplying, after the SiLU: A = A * mask (True = may attend), then "
        "return A @ v, A. An -inf fill before SiLU gives SiLU(-inf) = NaN.",
    ),
    "sampled_softmax_logq": (
        "Keep the positions with a target (has = targets > 0), then build the logits of the "
        "positive s_y (M,) and of the K negatives s_k (M, K) from item_weight.",
        "Correct the negatives only: s_k - log_q[negatives] - math.log(K), K = "
        "negatives.shape[-1] (the number of draws); the positive stays s_y.",
        "Fill with -inf where negatives == target (accidental hit) or == 0 (padding); "
        "logits = torch.cat([s_y[:, None], s_k], 1); "
        "loss = (torch.logsumexp(logits, 1) - s_y).mean().",
    ),
    "gbce_loss": (
        "First beta: alpha = min(1, K / (n_items - 1)) with K = negatives.shape[-1], then "
        "beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha).",
        "-log sigmoid(x)^beta = beta * F.softplus(-x) and -log(1 - sigmoid(x)) = "
        "F.softplus(x): no log of a sigmoid that rounds to 0 or 1.",
        "valid = (negatives != target) & (negatives != 0); per position "
        "(beta * softplus(-s_y) + (softplus(s_k) * valid).sum(-1)) / (1 + valid.sum(-1)), "
        "then the mean over positions with a target.",
    ),
    "intra_list_diversity": (
        "For each list compare every pair of items a < b (k (k - 1) / 2 pairs) by the Jaccard "
        "distance of their feature sets, 1 - |A & B| / |A | B|, and average.",
        "f = (item_features[top_items] > 0).to(item_features.dtype) -> (U, k, F); "
        "inter = f @ f.transpose(1, 2) -> (U, k, k); union = |A| + |B| - inter.",
        "jaccard = torch.where(union > 0, inter / union.clamp(min=1), 1.0) (two featureless "
        "items: identical); keep the pairs a < b with torch.triu_indices(k, k, offset=1) and "
        "return (1 - jaccard[:, i, j]).mean(-1), shape (U,).",
    ),
    "mmr_rerank": (
        "Greedy: k rounds, each picks the not-yet-picked candidate with the largest "
        "lam * relevance - (1 - lam) * (its largest similarity to the items already picked).",
        "Keep closest = zeros(C) (the max over an empty list is 0) and taken = zeros(C, bool); "
        "after each pick i: closest = torch.maximum(closest, similarity[:, i]).",
        "gain = (lam * relevance - (1 - lam) * closest).masked_fill(taken, -inf); "
        "i = int(gain.argmax()) (the first maximum: ties to the lower position); return the "
        "positions in pick order as a LongTensor (k,).",
    ),
    "cross_attention_fusion": (
        "One query per item (its id embedding), attending over that item's own T feature "
        "tokens: scores (N, T), a softmax over T, then a residual sum with the id.",
        "q = id_emb @ W_q -> (N, D); k = feature_emb @ W_k, v = feature_emb @ W_v -> (N, T, D); "
        "scores = (k @ q[:, :, None])[..., 0] / sqrt(D) -> (N, T).",
        "weights = softmax(scores.masked_fill(~feature_mask, -inf), -1).nan_to_num(0.0) (an "
        "item without tokens: zero weights); fused = id_emb + (weights[:, :, None] * v).sum(1).",
    ),
    "residual_quantize": (
        "Each residual (a row of the (N, D) input) takes the index of its nearest codebook "
        "row in squared Euclidean distance; what the code vector does not explain is passed on.",
        "dist = torch.cdist(residual, codebook) ** 2 -> (N, K), or expanded: (codebook ** 2)"
        ".sum(1) - 2 * residual @ codebook.T (||r||^2 is the same for every code, ||c||^2 "
        "is not). Take the argmin over the codes, dim=1.",
        "codes = dist.argmin(dim=1) (long, the first minimum on ties); quantized = "
        "codebook[codes] -> (N, D); return codes, quantized, residual - quantized.",
    ),
    "constrained_beam_step": (
        "Score every continuation (beam w, token v) as beam_scores[b, w] + log_probs[b, w, v], "
        "give the ones the trie forbids -inf, and keep the beam_size best of all W * V "
        "together.",
        "total = (beam_scores[:, :, None] + log_probs).masked_fill(~allowed, float('-inf')) "
        "-> (B, W, V); flatten to (B, W * V): flat index i is beam i // V, token i % V.",
        "scores, i = total.reshape(B, W * V).topk(beam_size, dim=1) (sorted, best first); "
        "return scores, i // V, i % V. Where a score is -inf, parent and token may be anything.",
    ),
    "codebook_usage": (
        "Count how many of the codebook_size codes at least one item uses, and divide by "
        "codebook_size (not by the number of items).",
        "torch.unique(codes).numel() counts each used code once; or mark a (K,) bool tensor: "
        "used = torch.zeros(codebook_size, dtype=torch.bool); used[codes] = True.",
        "return torch.unique(codes).numel() / codebook_size (or float(used.float().mean())): "
        "the unused codes above codes.max() count in the denominator too.",
    ),
}


@dataclass(frozen=True)
class Hint:
    """Hints 1..level for one exercise; shown as text or Markdown."""

    exercise_id: str
    lines: tuple[str, ...]
    more: bool

    def __str__(self) -> str:
        body = "\n".join(f"Hint {i}: {h}" for i, h in enumerate(self.lines, 1))
        tail = "\n(more: ask for the next level)" if self.more else "\n(no more hints: the solution is in solutions/)"
        return body + tail

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's plain-text display
        p.text(str(self))

    def _repr_markdown_(self) -> str:
        return "\n\n".join(f"**Hint {i}.** {h}" for i, h in enumerate(self.lines, 1))


def hint(exercise_id: str, level: int | str = 1) -> Hint | str:
    """Reveal hints 1..``level`` for ``exercise_id`` (levels beyond the last show all).

    ``level`` may be an int or a string of one ("2"); an unknown id or a bad
    level returns a sentence saying what to type instead of raising.
    """
    if exercise_id not in HINTS:
        from difflib import get_close_matches

        near = get_close_matches(str(exercise_id), HINTS, n=1, cutoff=0.4)
        return _Note(f"no exercise {exercise_id!r}" + (f"; did you mean {near[0]!r}?" if near
                     else f"; known ids: {', '.join(sorted(HINTS))}"))
    try:
        level = int(level)
    except (TypeError, ValueError):
        return _Note(f"the hint level is a number (1, 2 or 3), got {level!r}: "
                     f"hint({exercise_id!r}, 1)")
    if level < 1:
        return _Note(f"hint levels start at 1, got {level}: hint({exercise_id!r}, 1)")
    all_hints = HINTS[exercise_id]
    return Hint(exercise_id, all_hints[:level], level < len(all_hints))


class _Note(str):
    """A plain message that displays without quotes in a notebook."""

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

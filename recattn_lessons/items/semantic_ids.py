"""Semantic IDs: items as short tuples of codes (lesson 10).

TIGER (Rajput et al., NeurIPS 2023, "Recommender Systems with Generative
Retrieval") gives every item a tuple ``(c_1, ..., c_L)`` computed from its
content embedding by **residual quantization**: level 1 picks the nearest
code of codebook 1, level 2 quantizes what is left (the residual), and so on,
so items with similar content share their first codes.

Every function takes plain ``(N, D)`` tensors; item tables of the course are
``(n_items + 1, ...)`` with row 0 the padding (see :mod:`.text`).

- :func:`residual_quantize`, :func:`kmeans`, :func:`rq_kmeans`  codebooks by k-means, level by level
- :class:`RQVAE`, :func:`train_rqvae`   TIGER's learned quantizer (encoder, codebooks, decoder)
- :func:`random_ids`, :func:`lsh_ids`   baselines: no content, random hyperplanes
- :func:`codebook_usage`, :func:`code_entropy`, :func:`id_diagnostics`   is the codebook healthy?
- :func:`add_disambiguation`, :class:`SemanticIDs`, :func:`build_semantic_ids`  one unique ID
  per item

K-means runs in float64: its codes then do not depend on the CPU's
float32 rounding, so a lesson's printed codes are the same on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..progress import tqdm

__all__ = ["residual_quantize", "codebook_usage", "kmeans", "RQKMeans", "RQResult", "rq_kmeans",
           "RQVAE", "train_rqvae", "random_ids", "lsh_ids", "code_entropy", "id_diagnostics",
           "add_disambiguation", "SemanticIDs", "build_semantic_ids", "METHODS"]

METHODS = ("rq-kmeans", "rqvae", "lsh", "random")


def residual_quantize(residual: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One step of residual quantization.

    Args:
        residual: ``(N, D)`` what earlier levels left unexplained (at level 1,
            the embeddings themselves).
        codebook: ``(K, D)`` this level's code vectors.

    Returns:
        ``(codes, quantized, new_residual)``: ``codes`` ``(N,)`` long, the index
        of the codebook row nearest to each residual in squared Euclidean
        distance (ties: the lowest index); ``quantized`` ``(N, D)``, those rows;
        ``new_residual`` ``(N, D)`` = ``residual - quantized``, the input of the
        next level.
    """
    if residual.dim() != 2 or codebook.dim() != 2:
        raise ValueError(f"residual must be (N, D) and codebook (K, D), got "
                         f"{tuple(residual.shape)} and {tuple(codebook.shape)}")
    if residual.shape[1] != codebook.shape[1]:
        raise ValueError(f"residual has D={residual.shape[1]} but codebook has D={codebook.shape[1]}; "
                         f"both must share the embedding size")
    if codebook.shape[0] < 1:
        raise ValueError("codebook is empty: it needs at least one code vector (K >= 1)")
    # ||r - c||^2 = ||r||^2 - 2 r.c + ||c||^2; ||r||^2 is the same for every code
    dist = (codebook * codebook).sum(1)[None, :] - 2 * residual @ codebook.T  # (N, K)
    codes = dist.argmin(dim=1)  # (N,) first minimum on ties
    quantized = codebook[codes]  # (N, D)
    return codes, quantized, residual - quantized


def codebook_usage(codes: Tensor, codebook_size: int) -> float:
    """Share of the ``codebook_size`` codes that at least one item uses.

    ``codes``: ``(N,)`` integer codes of one level, each in
    ``0..codebook_size - 1``. A collapsed codebook (every item on a few codes)
    scores near ``1 / codebook_size``; a healthy one near 1.
    """
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be positive, got {codebook_size}")
    if codes.dim() != 1:
        raise ValueError(f"codes must be one level, shape (N,), got {tuple(codes.shape)}; "
                         f"for (N, L) codes pass codes[:, level]")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise ValueError(f"codes must lie in 0..{codebook_size - 1}, got "
                         f"{int(codes.min())}..{int(codes.max())}")
    used = torch.zeros(codebook_size, dtype=torch.bool)
    used[codes.long()] = True
    return float(used.float().mean())


# --------------------------------------------------------------------- k-means

def _nearest(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """``(assign (N,), sq_dist (N,))``: each row's nearest centroid and its squared distance."""
    assign, _, residual = residual_quantize(x, centroids)
    return assign, (residual * residual).sum(1)


def _init_centroids(x: Tensor, k: int, init: str, g: torch.Generator) -> Tensor:
    """``(k, D)`` starting centroids: ``k`` distinct rows, or k-means++ (Arthur &
    Vassilvitskii 2007).

    k-means++ picks the first centroid uniformly, then each next one with probability
    ``d(x)^2 / sum d^2``, ``d`` = distance to the nearest centroid picked so far.
    """
    N = x.shape[0]
    if init == "random":
        return x[torch.randperm(N, generator=g)[:k]].clone()
    sq = (x * x).sum(1)  # (N,) ||x||^2, so ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2
    chosen = [int(torch.randint(N, (1,), generator=g))]
    d2 = (sq - 2 * x @ x[chosen[0]] + sq[chosen[0]]).clamp_min(0)  # (N,)
    for _ in range(1, k):
        if float(d2.sum()) > 0:
            nxt = int(torch.multinomial(d2, 1, generator=g))
        else:  # fewer distinct points than k: any point will do
            nxt = int(torch.randint(N, (1,), generator=g))
        chosen.append(nxt)
        d2 = torch.minimum(d2, (sq - 2 * x @ x[nxt] + sq[nxt]).clamp_min(0))
    return x[chosen].clone()


def kmeans(x: Tensor, k: int, n_iter: int = 25, generator: torch.Generator | None = None,
           init: Literal["kmeans++", "random"] | Tensor = "kmeans++",
           reset_dead: bool = True) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means: ``(centroids (k, D) float64, assign (N,) long)``.

    Each iteration assigns every row to its nearest centroid and moves each
    centroid to the mean of its rows, which lowers ``sum_i ||x_i - c_{a_i}||^2``.
    A centroid no row chose (a **dead code**) has no mean: with ``reset_dead``
    it jumps onto the row farthest from its own centroid (the worst-explained
    one), otherwise it stays where it is, unused. Stops early when no centroid
    moves. ``assign`` is computed from the returned centroids. ``init`` may
    also be a ``(k, D)`` tensor of starting centroids.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (N, D), got {tuple(x.shape)}")
    N = x.shape[0]
    if not 1 <= k <= N:
        raise ValueError(f"k-means needs 1 <= k <= N rows to start from, got k={k}, N={N}; "
                         f"use a smaller codebook or more items")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x = x.double()
    if isinstance(init, Tensor):
        if init.shape != (k, x.shape[1]):
            raise ValueError(f"init centroids must be (k={k}, D={x.shape[1]}), "
                             f"got {tuple(init.shape)}")
        centroids = init.double().clone()
    elif init in ("kmeans++", "random"):
        centroids = _init_centroids(x, k, init, g)  # (k, D)
    else:
        raise ValueError(f"init must be 'kmeans++', 'random' or a (k, D) tensor, got {init!r}")
    for _ in range(n_iter):
        assign, d2 = _nearest(x, centroids)  # (N,), (N,)
        counts = torch.bincount(assign, minlength=k)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, D)
        alive = counts > 0
        new = torch.where(alive[:, None], sums / counts.clamp_min(1)[:, None], centroids)
        if reset_dead and not alive.all():
            dead = (~alive).nonzero().squeeze(1)  # (n_dead,)
            far = d2.topk(min(len(dead), N)).indices  # the worst-explained rows
            new[dead[:len(far)]] = x[far]
        if torch.equal(new, centroids):
            break
        centroids = new
    assign, _ = _nearest(x, centroids)
    return centroids, assign


@dataclass
class RQResult:
    """What :func:`rq_kmeans` learned.

    ``codes`` ``(N, L)`` long; ``codebooks`` ``L`` tensors ``(K, D)`` float64;
    ``recon_error[l]`` = ``mean_i ||r_i^{(l+1)}||^2``, the squared norm of what is
    left after ``l + 1`` levels (``x - sum of the chosen codes``): it falls with depth.
    """

    codes: Tensor
    codebooks: list[Tensor]
    recon_error: list[float]

    def encode(self, emb: Tensor) -> Tensor:
        """``(M, L)`` codes of new rows ``(M, D)`` (cold items) with the fitted codebooks."""
        return _rq_encode(emb.double(), self.codebooks)[0]

    def reconstruct(self, codes: Tensor) -> Tensor:
        """``(M, D)`` float64 ``sum_l codebooks[l][codes[:, l]]``: what the codes say."""
        return sum(book[codes[:, l]] for l, book in enumerate(self.codebooks))


def _rq_encode(x: Tensor, codebooks: list[Tensor]) -> tuple[Tensor, list[float]]:
    residual, codes, errors = x, [], []
    for codebook in codebooks:
        c, _, residual = residual_quantize(residual, codebook)  # (N,), _, (N, D)
        codes.append(c)
        errors.append(float((residual * residual).sum(1).mean()))
    return torch.stack(codes, dim=1), errors


@dataclass(frozen=True)
class RQKMeans:
    """Residual k-means (RQ-k-means): one k-means codebook per level, on the residuals."""

    levels: int = 3  # codes per item
    codebook_size: int = 256  # K codes per level
    seed: int = 0
    init: Literal["kmeans++", "random"] = "kmeans++"
    reset_dead: bool = True  # re-seed empty clusters (see kmeans)
    n_iter: int = 25  # Lloyd iterations per level

    def fit(self, emb: Tensor) -> RQResult:
        """Level ``l`` runs :func:`kmeans` on ``r^{(l)}`` (``r^{(0)} = emb``) and
        ``r^{(l+1)} = r^{(l)} - c_{code}``."""
        if self.levels < 1:
            raise ValueError(f"levels must be >= 1, got {self.levels}")
        g = torch.Generator().manual_seed(self.seed)
        residual, codebooks = emb.double(), []
        for _ in range(self.levels):
            centroids, _ = kmeans(residual, self.codebook_size, self.n_iter, g, self.init,
                                  self.reset_dead)
            _, _, residual = residual_quantize(residual, centroids)
            codebooks.append(centroids)
        codes, errors = _rq_encode(emb.double(), codebooks)
        return RQResult(codes, codebooks, errors)


def rq_kmeans(emb: Tensor, levels: int = 3, codebook_size: int = 256, seed: int = 0,
              init: Literal["kmeans++", "random"] = "kmeans++", reset_dead: bool = True,
              n_iter: int = 25) -> RQResult:
    """``RQKMeans(levels, codebook_size, seed, init, reset_dead, n_iter).fit(emb)``."""
    return RQKMeans(levels, codebook_size, seed, init, reset_dead, n_iter).fit(emb)


# ---------------------------------------------------------------------- RQ-VAE

def _linear(n_in: int, n_out: int, g: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with PyTorch's default init, U(+-1/sqrt(n_in)), drawn from ``g``."""
    layer = nn.Linear(n_in, n_out)
    bound = 1 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(n_out, n_in, generator=g) * 2 * bound - bound)
        layer.bias.copy_(torch.rand(n_out, generator=g) * 2 * bound - bound)
    return layer


class RQVAE(nn.Module):
    """TIGER's residual-quantized autoencoder (Rajput et al. 2023, section 3.1).

    ``z = enc(x)`` ``(B, d)``; level ``l`` picks ``c_l`` nearest to ``r_l``
    (``r_1 = z``, ``r_{l+1} = r_l - c_l``); ``z_q = sum_l c_l``; ``x_hat = dec(z_q)``
    with the straight-through estimator ``z + sg[z_q - z]`` (gradients of the
    reconstruction skip the argmin and reach the encoder). Loss, per element means::

        ||x - x_hat||^2 + sum_l ( ||sg[r_l] - c_l||^2 + beta ||r_l - sg[c_l]||^2 )

    the codebook term moves codes to their residuals, the commitment term
    (``beta = 0.25``) keeps residuals near their codes. Codebooks start as
    ``init_scale * N(0, 1)``; a code no residual picks gets no gradient and stays
    dead, hence :func:`train_rqvae`'s ``kmeans_init`` and ``reset_dead``.
    NOTE: the paper's encoder is 512-256-128 and trains 20k epochs with Adagrad;
    ours is one hidden layer trained for seconds with Adam, and the input is
    standardised (``(x - mean) / std``, buffers set by :func:`train_rqvae`).
    """

    def __init__(self, in_dim: int, latent_dim: int = 32, hidden: int = 256, levels: int = 3,
                 codebook_size: int = 256, beta: float = 0.25, init_scale: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        self.beta, self.levels, self.codebook_size = beta, levels, codebook_size
        self.encoder = nn.Sequential(_linear(in_dim, hidden, g), nn.ReLU(),
                                     _linear(hidden, latent_dim, g))  # D -> d
        self.decoder = nn.Sequential(_linear(latent_dim, hidden, g), nn.ReLU(),
                                     _linear(hidden, in_dim, g))  # d -> D
        self.codebooks = nn.Parameter(init_scale * torch.randn(levels, codebook_size, latent_dim,
                                                               generator=g))  # (L, K, d)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(()))

    def latent(self, x: Tensor) -> Tensor:
        """``(B, D)`` embeddings -> ``(B, d)`` latents."""
        return self.encoder((x.to(self.mean.dtype) - self.mean) / self.std)

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """``(codes (B, L), z_q (B, d), rq_loss, residuals)``, ``residuals[l]`` = ``r_l``
        detached."""
        residual, codes, z_q, rq_loss, residuals = z, [], 0.0, 0.0, []
        for book in self.codebooks:  # (K, d)
            residuals.append(residual.detach())
            c, _, _ = residual_quantize(residual.detach(), book.detach())  # (B,)
            q = book[c]  # (B, d), carries the codebook's gradient
            rq_loss = (rq_loss + F.mse_loss(q, residual.detach())
                       + self.beta * F.mse_loss(residual, q.detach()))
            codes.append(c)
            z_q = z_q + q
            residual = residual - q.detach()
        return torch.stack(codes, dim=1), z_q, rq_loss, residuals

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """``(loss, recon, codes (B, L), residuals)`` for a batch ``x`` ``(B, D)``."""
        z = self.latent(x)  # (B, d)
        codes, z_q, rq_loss, residuals = self.quantize(z)
        x_hat = self.decoder(z + (z_q - z).detach())  # straight-through: forward z_q, grad to z
        recon = F.mse_loss(x_hat, (x.to(self.mean.dtype) - self.mean) / self.std)
        return recon + rq_loss, recon, codes, residuals

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """``(N, L)`` codes of ``x`` ``(N, D)``, e.g. cold items never seen in training."""
        return self.quantize(self.latent(x))[0]


def _level_usage(codes: Tensor, codebook_size: int) -> list[float]:
    return [codebook_usage(codes[:, l], codebook_size) for l in range(codes.shape[1])]


def train_rqvae(emb: Tensor, levels: int = 3, codebook_size: int = 256, latent_dim: int = 32,
                steps: int = 1000, batch_size: int = 512, lr: float = 1e-3, seed: int = 0,
                kmeans_init: bool = True, reset_dead: bool = True, reset_every: int = 100,
                init_scale: float = 1.0, log_every: int = 100,
                progress: bool = True) -> tuple[RQVAE, dict[str, list]]:
    """Train an :class:`RQVAE` on ``emb`` ``(N, D)``: ``(model, history)``.

    ``kmeans_init``: before step 1 each codebook is :func:`kmeans` of that
    level's residuals of all latents (RQ-k-means in the latent space), so every
    code starts where data is. ``reset_dead``: every ``reset_every`` steps, the
    codes of a level that no batch row picked in that window are moved onto
    random residuals of the current batch. ``history`` holds ``step``, ``loss``,
    ``recon`` (batch values at step 1 and every ``log_every`` steps) and ``usage``: one list
    per level of :func:`codebook_usage` over all ``N`` rows at those steps.
    Adam, ``lr``; batches drawn from ``torch.Generator(seed)``.
    """
    if emb.dim() != 2 or emb.shape[0] < codebook_size:
        raise ValueError(f"emb must be (N, D) with N >= codebook_size={codebook_size}, "
                         f"got {tuple(emb.shape)}")
    x = emb.float()
    N, D = x.shape
    g = torch.Generator().manual_seed(seed)
    model = RQVAE(D, latent_dim, levels=levels, codebook_size=codebook_size, init_scale=init_scale,
                  generator=g)
    model.mean.copy_(x.mean(0))
    model.std.copy_((x - model.mean).std())
    if kmeans_init:
        with torch.no_grad():
            fit = RQKMeans(levels, codebook_size, seed, n_iter=10).fit(model.latent(x))
            model.codebooks.copy_(torch.stack(fit.codebooks).float())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list] = {"step": [], "loss": [], "recon": [],
                                "usage": [[] for _ in range(levels)]}
    seen = torch.zeros(levels, codebook_size, dtype=torch.bool)  # codes picked this window
    for step in tqdm(range(1, steps + 1), desc="rq-vae", disable=not progress):
        batch = x[torch.randint(N, (batch_size,), generator=g)]  # (B, D)
        loss, recon, codes, residuals = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen[torch.arange(levels)[None, :].expand_as(codes), codes] = True
        if reset_dead and step % reset_every == 0:
            with torch.no_grad():
                for l in range(levels):
                    dead = (~seen[l]).nonzero().squeeze(1)  # (n_dead,)
                    pick = torch.randint(batch_size, (len(dead),), generator=g)
                    model.codebooks[l, dead] = residuals[l][pick]
            seen.zero_()
        if step == 1 or step % log_every == 0 or step == steps:
            history["step"].append(step)
            history["loss"].append(float(loss.detach()))
            history["recon"].append(float(recon.detach()))
            for l, u in enumerate(_level_usage(model.encode(x), codebook_size)):
                history["usage"][l].append(u)
    return model, history


# ------------------------------------------------------------------- baselines

def random_ids(n: int, levels: int, codebook_size: int, generator: torch.Generator) -> Tensor:
    """``(n, levels)`` codes drawn uniformly from ``0..codebook_size - 1``: IDs with no content."""
    return torch.randint(codebook_size, (n, levels), generator=generator)


def lsh_ids(emb: Tensor, levels: int, codebook_size: int, generator: torch.Generator) -> Tensor:
    """``(N, levels)`` codes from random hyperplanes (SimHash, Charikar 2002).

    With ``b = log2(K)`` bits per level, bit ``j`` of level ``l`` is
    ``[<x - mean, h_{lb+j}> > 0]`` for Gaussian ``h``: close vectors agree on most
    bits. NOTE: the hyperplanes pass through the mean of ``emb``, not the
    origin: text embeddings share a large common direction, which would set
    most bits the same for every item.
    """
    bits = int(round(math.log2(codebook_size)))
    if codebook_size < 2 or 2 ** bits != codebook_size:
        raise ValueError(f"lsh_ids needs codebook_size a power of two >= 2, got {codebook_size}")
    x = emb.double() - emb.double().mean(0)  # (N, D)
    planes = torch.randn(x.shape[1], levels * bits, generator=generator, dtype=torch.float64)
    signs = (x @ planes > 0).long().view(-1, levels, bits)  # (N, L, b)
    return (signs << torch.arange(bits)).sum(-1)  # (N, L)


# ----------------------------------------------------------------- diagnostics

def code_entropy(codes: Tensor, codebook_size: int) -> float:
    """``H = -sum_k p_k log2 p_k`` bits, ``p_k`` the share of rows with code ``k``.

    ``log2(codebook_size)`` for a uniform use of every code, 0 for a collapse onto one.
    """
    codebook_usage(codes, codebook_size)  # validates shape and range
    p = torch.bincount(codes.long(), minlength=codebook_size).double() / max(codes.numel(), 1)
    p = p[p > 0]
    return max(0.0, float(-(p * p.log2()).sum()))  # never -0.0


def _groups(codes: Tensor) -> tuple[Tensor, Tensor]:
    """``(group (N,), size (G,))``: the index of each row's distinct tuple, and the group sizes."""
    _, group, size = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    return group, size


def id_diagnostics(codes: Tensor, sizes) -> dict:
    """How well ``codes`` ``(N, L)`` (column ``j`` in ``0..sizes[j] - 1``) tell items apart.

    Per level: ``usage`` (share of codes used), ``entropy_bits`` and
    ``entropy_norm`` (``H / log2 K``; 1 when ``K = 1``). Per tuple:
    ``n_distinct``, ``unique_share`` (items alone with their tuple),
    ``collision_rate`` (``1 - unique_share``: items sharing it), ``largest_group``,
    the number of disambiguation values needed to make every ID unique.
    """
    sizes = tuple(int(s) for s in sizes)
    if codes.dim() != 2 or codes.shape[1] != len(sizes) or codes.shape[0] < 1:
        raise ValueError(f"codes must be (N >= 1, L={len(sizes)}), got {tuple(codes.shape)}")
    cols = [codes[:, j] for j in range(len(sizes))]
    entropy = [code_entropy(c, k) for c, k in zip(cols, sizes)]
    group, size = _groups(codes)
    unique = float((size[group] == 1).double().mean())
    return {"usage": [codebook_usage(c, k) for c, k in zip(cols, sizes)],
            "entropy_bits": entropy,
            "entropy_norm": [h / math.log2(k) if k > 1 else 1.0 for h, k in zip(entropy, sizes)],
            "n_distinct": len(size), "unique_share": unique, "collision_rate": 1.0 - unique,
            "largest_group": int(size.max())}


def add_disambiguation(codes: Tensor) -> Tensor:
    """``(N, L)`` -> ``(N, L + 1)``: append how many earlier rows share the row's tuple.

    The first item with a given tuple gets 0, the second 1, ... (in row order), so
    every row of the result is unique and an item alone with its tuple gets 0.
    The new column needs ``largest_group`` values (:func:`id_diagnostics`).
    """
    if codes.dim() != 2:
        raise ValueError(f"codes must be (N, L), got {tuple(codes.shape)}")
    if codes.shape[0] == 0:
        return codes.new_zeros(0, codes.shape[1] + 1)
    group, size = _groups(codes)  # (N,), (G,)
    order = torch.argsort(group, stable=True)  # rows grouped, row order kept inside a group
    start = size.cumsum(0) - size  # (G,) first sorted position of each group
    rank = torch.empty_like(group)
    rank[order] = torch.arange(len(group)) - start[group[order]]
    return torch.cat([codes.long(), rank[:, None]], dim=1)


# ------------------------------------------------------------ IDs of a catalogue

@dataclass(frozen=True)
class SemanticIDs:
    """Every item's semantic ID, what :mod:`recattn_lessons.models.generative_retrieval` reads.

    ``codes`` ``(n_items + 1, C)`` long, row 0 (padding) zeros; column ``j`` in
    ``0..sizes[j] - 1``; the last column is the disambiguation column when
    ``disambiguated``. ``method`` names how the codes were made.
    """

    codes: Tensor
    sizes: tuple[int, ...]
    method: str
    disambiguated: bool = True
    info: dict = field(default_factory=dict, compare=False)  # e.g. recon_error, training history

    def __post_init__(self) -> None:
        if self.codes.dim() != 2 or self.codes.shape[1] != len(self.sizes):
            raise ValueError(f"codes must be (n_items + 1, C={len(self.sizes)}), "
                             f"got {tuple(self.codes.shape)}")
        if (self.codes[0] != 0).any():
            raise ValueError("row 0 of codes is the padding item and must be all zeros")
        if (self.codes < 0).any() or (self.codes >= torch.tensor(self.sizes)).any():
            raise ValueError(f"codes must lie in 0..sizes[j] - 1 per column, sizes={self.sizes}")

    @property
    def n_items(self) -> int:
        return self.codes.shape[0] - 1

    def diagnostics(self) -> dict:
        """:func:`id_diagnostics` of the items' codes (row 0 left out)."""
        return id_diagnostics(self.codes[1:], self.sizes)


def build_semantic_ids(emb: Tensor | None, method: str = "rq-kmeans", levels: int = 3,
                       codebook_size: int = 256, seed: int = 0, disambiguate: bool = True,
                       n_items: int | None = None, progress: bool = False) -> SemanticIDs:
    """Semantic IDs of the ``n_items`` items from ``emb`` ``(n_items + 1, D)`` (row 0 ignored).

    ``method``: ``"rq-kmeans"`` (:func:`rq_kmeans`), ``"rqvae"`` (:func:`train_rqvae`),
    ``"lsh"`` (:func:`lsh_ids`) or ``"random"`` (:func:`random_ids`, ``emb`` may be
    ``None``, then pass ``n_items``). With ``disambiguate`` the result has
    ``C = levels + 1`` columns, the last of size ``largest_group``
    (:func:`add_disambiguation`), so no two items share an ID.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if emb is None and (method != "random" or n_items is None):
        raise ValueError(f"method={method!r} needs emb (n_items + 1, D); only 'random' takes "
                         f"emb=None, and then n_items")
    if emb is not None and n_items is not None and emb.shape[0] != n_items + 1:
        raise ValueError(f"emb has {emb.shape[0]} rows but n_items={n_items}: expected "
                         f"n_items + 1 rows (row 0 = padding)")
    n = n_items if emb is None else emb.shape[0] - 1
    g, info = torch.Generator().manual_seed(seed), {}
    if method == "random":
        codes = random_ids(n, levels, codebook_size, g)
    elif method == "lsh":
        codes = lsh_ids(emb[1:], levels, codebook_size, g)
    elif method == "rq-kmeans":
        fit = rq_kmeans(emb[1:], levels, codebook_size, seed)
        codes, info["recon_error"] = fit.codes, fit.recon_error
    else:
        model, info["history"] = train_rqvae(emb[1:], levels, codebook_size, seed=seed,
                                             progress=progress)
        codes = model.encode(emb[1:])
    sizes = (codebook_size,) * levels
    if disambiguate:
        codes = add_disambiguation(codes)
        sizes += (int(codes[:, -1].max()) + 1,)
    table = torch.cat([codes.new_zeros(1, codes.shape[1]), codes.long()])  # (n_items + 1, C)
    return SemanticIDs(table, sizes, method, disambiguate, info)

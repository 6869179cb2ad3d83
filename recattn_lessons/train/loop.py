"""The training loop: progress, early stopping, checkpoints, exact resume.

Lesson 05 calls :func:`run` directly; the command line is a thin wrapper.
``run(config, data=None) -> Result``:

1. loads the data (``config.dataset``, or the given ``Interactions``), splits
   it leave-one-out and cuts the training sequences into windows;
2. builds the model (``models.build``) and an AdamW optimizer;
3. trains epoch by epoch (tqdm bars for epochs and batches), with bf16
   autocast where ``config.amp`` asks for it, stopping with a message that
   names the epoch and batch if the loss becomes NaN or inf;
4. after every epoch evaluates on **validation** (full ranking NDCG@10 picks
   the best epoch; test is never looked at), writes ``out/last.pt`` and
   stops after ``patience`` epochs without improvement;
5. restores the best weights, evaluates validation and test under both
   protocols in fp32, and writes ``out/metrics.json`` and
   ``out/history.json``.

Launched by torchrun (``WORLD_SIZE`` > 1) the same loop trains with
DistributedDataParallel: see :mod:`recattn_lessons.train.distributed` and
the comments marked ``# DDP``. Without torchrun nothing changes.

``train_seconds`` counts the training epochs *and* their validation passes
(the wall time a learner waits), not data loading or the final test pass.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from recattn_lessons.progress import tqdm

from .. import models
from ..data.batching import SeenIndex, iterate_batches, sliding_windows, train_subset
from ..data.movielens import Interactions
from ..data.splits import Split, cold_targets, hold_out_items, leave_one_out
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .compiling import CompiledLoss, use_compile
from .config import TEXT_FEATURES, TOKEN_FEATURES, TrainConfig
from .distributed import Dist, launch, wrap
from .evaluate import eval_negatives, evaluate

__all__ = ["Result", "run", "load_dataset", "resolve_device", "model_hparams", "build_model",
           "TrainingDiverged", "ddp_loss"]

COMMON = ("maxlen", "d_model", "n_heads", "n_blocks", "dropout", "loss", "n_negatives", "attention",
          "fusion")


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf; the message names the epoch and batch."""


@dataclass
class Result:
    """What :func:`run` returns: the trained (best) model and its numbers."""

    model: models.SequentialRecommender
    metrics: dict  # the content of metrics.json
    history: list  # one dict per epoch: loss, seconds, valid metrics
    split: Split
    data: Interactions
    config: TrainConfig


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch.cuda.is_available() is False "
                           "(no GPU or a CPU-only torch); use --device cpu or auto")
    return torch.device(device)


def load_dataset(name: str, tie_seed: int | None = 0) -> Interactions:
    # tie_seed: issue 12 (H3), random order within same-second ratings
    if name == "movielens":
        from ..data.movielens import load_movielens
        return load_movielens(tie_seed=tie_seed)
    if name in ("ml-1m", "ml-20m"):
        from ..data.grouplens import load_grouplens  # downloads once, errors offline
        return load_grouplens(name, tie_seed=tie_seed)
    raise ValueError(f"unknown dataset {name!r}")


def model_hparams(cfg: TrainConfig) -> dict:
    """The config's hyper-parameters that ``cfg.model`` accepts."""
    accepted = models.hparam_names(cfg.model)
    hp = {k: getattr(cfg, k) for k in COMMON if k in accepted and getattr(cfg, k) is not None}
    return {**hp, **cfg.model_args}


def build_model(cfg: TrainConfig, data: Interactions) -> models.SequentialRecommender:
    """``cfg.model`` for ``data``; with ``cfg.item_features`` the model also gets the items'
    feature tokens (lesson 09) and/or text embeddings (lesson 10), built from ``data``
    (they are data, not hyper-parameters). ``genret`` (lesson 10) gets its semantic IDs."""
    if cfg.model == "genret":
        return _generative_retriever(cfg, data)
    tokens = vectors = None
    token_kinds = tuple(k for k in cfg.item_features if k in TOKEN_FEATURES)
    text_kinds = [k for k in cfg.item_features if k in TEXT_FEATURES]
    if token_kinds:
        from ..data.item_features import feature_tokens
        tokens, _ = feature_tokens(data, token_kinds)  # (N+1, T)
    if text_kinds:
        from ..items.text import item_text_embeddings
        vectors = item_text_embeddings(data, encoder=text_kinds[0].removeprefix("text-"),
                                       progress=cfg.progress)  # (N+1, E)
    return models.build(cfg.model, data.n_items, item_tokens=tokens, item_vectors=vectors,
                        **model_hparams(cfg))


SEMANTIC_ID_ARGS = {"ids": "rq-kmeans", "levels": 3, "codebook_size": 256, "text": "e5"}


def _generative_retriever(cfg: TrainConfig, data: Interactions) -> models.SequentialRecommender:
    """Lesson 10: semantic IDs from the items' text (``cfg.model_args`` keys ``ids``,
    ``levels``, ``codebook_size``, ``text``; defaults :data:`SEMANTIC_ID_ARGS`), seeded
    by ``cfg.seed``, then the generative retriever over them."""
    from ..items.semantic_ids import build_semantic_ids
    from ..items.text import item_text_embeddings
    args = {**SEMANTIC_ID_ARGS, **{k: v for k, v in cfg.model_args.items() if k in SEMANTIC_ID_ARGS}}
    emb = None if args["ids"] == "random" else item_text_embeddings(data, encoder=args["text"],
                                                                    progress=cfg.progress)
    ids = build_semantic_ids(emb, method=args["ids"], levels=args["levels"],
                             codebook_size=args["codebook_size"], seed=cfg.seed, n_items=data.n_items)
    hp = {k: v for k, v in model_hparams(cfg).items() if k not in SEMANTIC_ID_ARGS}
    return models.build("genret", data.n_items, semantic_ids=ids, **hp)


def cpu_has_bf16() -> bool:
    """True if the CPU computes bf16 natively (AVX512-BF16 or AMX, Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(amp: str, device: torch.device, dtype: str = "float32") -> bool:
    """``amp='auto'``: bf16 on CUDA, and on CPUs with native bf16 (where we
    measured the item softmax 1.5-3.5x faster); elsewhere fp32, because
    emulated bf16 is slower than fp32."""
    if amp == "auto":
        return dtype == "float32" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()))
    return amp == "bf16"


def _autocast(cfg: TrainConfig, device: torch.device):
    if not use_bf16(cfg.amp, device, cfg.dtype):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _metrics_json(cfg, device, epochs, best_epoch, seconds, valid, test) -> dict:
    return {"model": cfg.model, "dataset": cfg.dataset, "device": device.type, "seed": cfg.seed,
            "epochs": epochs, "best_epoch": best_epoch, "bf16": use_bf16(cfg.amp, device, cfg.dtype),
            "train_seconds": round(seconds, 2),
            "seconds_per_epoch": round(seconds / max(epochs, 1), 3),
            "config": {k: v for k, v in cfg.to_dict().items() if k not in ("out", "resume", "progress")},
            "valid": valid, "test": test}


def run(config: TrainConfig, data: Interactions | None = None) -> Result:
    """Train and evaluate one model; see the module docstring."""
    with launch(resolve_device(config.device)) as d:  # DDP: one process unless torchrun
        return _run(config, data, d)


def _run(config: TrainConfig, data: Interactions | None, d: Dist) -> Result:
    cfg, device = config, d.device
    show = cfg.progress and d.is_main  # DDP: bars on rank 0 only
    data = load_dataset(cfg.dataset, cfg.tie_seed) if data is None else data
    if getattr(data, "tie_seed", cfg.tie_seed) != cfg.tie_seed:  # issue 12 (H3)
        raise ValueError(f"data were loaded with tie_seed={data.tie_seed} but the config says "
                         f"tie_seed={cfg.tie_seed}; load them with the same seed")
    split, cold = hold_out_items(leave_one_out(data), cfg.cold_items, cfg.seed)  # lesson 10
    out = Path(cfg.out) if cfg.out is not None else None

    torch.manual_seed(cfg.seed)  # model initialisation and dropout
    gen = torch.Generator().manual_seed(cfg.seed)  # batches and negatives
    dtype = getattr(torch, cfg.dtype)  # float64 in lessons: CPU-independent digits (config.quick)
    model = build_model(cfg, data).to(device=device, dtype=dtype)
    model.fit_counts(split.train)
    d.seed_dropout(cfg.seed)  # DDP: same initial weights everywhere, but each rank its own dropout
    windows = train_subset(sliding_windows(split.train, cfg.maxlen, cfg.stride), len(split.train),
                           cfg.train_fraction, cfg.seed)
    seen = SeenIndex(split.train, data.n_items)
    negs = {s: eval_negatives(split, s, cfg.seed, cfg.n_sampled) for s in ("valid", "test")}
    ev = dict(maxlen=cfg.maxlen, batch_size=cfg.eval_batch_size, device=device, progress=show)

    st = {"epoch": 0, "best_score": -math.inf, "best_epoch": 0, "bad": 0, "seconds": 0.0, "history": []}
    opt = best = None
    if model.trainable:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98),
                                weight_decay=cfg.weight_decay)
        best = copy.deepcopy(model.state_dict())
        if cfg.resume:
            if out is None:
                raise ValueError("resume=True needs out= (the folder holding last.pt)")
            ck = load_checkpoint(out / "last.pt")
            keep = ("epochs", "patience", "min_epochs", "device", "progress", "resume",
                    "max_train_seconds", "eval_batch_size", "out", "compile")
            old = {"item_features": [], "fusion": "sum", "cold_items": 0.0,  # checkpoints from before lessons 09, 10
                   **{k: v for k, v in ck["config"].items() if k not in keep}}
            new = {k: v for k, v in cfg.to_dict().items() if k not in keep}
            if old != new:
                diff = sorted(k for k in new if old.get(k) != new[k])
                raise ValueError(f"cannot resume: settings {diff} differ from the checkpoint's")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            best = ck["best_model"]
            st = ck["state"]
            restore_rng(ck["rng"], gen)  # DDP: every rank loads the same last.pt
            d.restore_dropout_rng(ck.get("rng_ranks"))  # DDP: and takes its own dropout state
    # DDP: same seed, so same initial weights on every rank; loss_of(global batch)
    # returns this rank's loss and the global batch's loss (see distributed.py)
    loss_of = ddp_loss(wrap(model, d), d) if d.active and model.trainable else None
    compiled = use_compile(cfg.compile, device, d.active) and model.trainable
    step_loss = CompiledLoss(model, show) if compiled else model.loss

    stopped = st["bad"] >= cfg.patience and st["epoch"] >= cfg.min_epochs
    epochs_bar = tqdm(total=cfg.epochs, initial=st["epoch"], desc=f"{cfg.model} epochs",
                      disable=not show or not model.trainable)
    while model.trainable and not stopped and st["epoch"] < cfg.epochs:
        epoch, t0 = st["epoch"] + 1, time.perf_counter()
        model.train()
        total, n = 0.0, 0
        batches = iterate_batches(windows, cfg.batch_size, gen, seen, model.n_negatives)
        # mininterval=1: in Jupyter every refresh is a widget message, and a
        # flood of them overflows the kernel's output queue (nbval times out)
        bar = tqdm(batches, total=math.ceil(len(windows) / cfg.batch_size), leave=False,
                   desc=f"epoch {epoch}", disable=not show, mininterval=1.0)
        for i, batch in enumerate(bar, start=1):
            with _autocast(cfg, device):
                if loss_of is None:
                    loss = step_loss(batch.to(device))
                    value = loss.item()
                else:  # DDP: value is the global batch's loss, the same on every rank
                    loss, value = loss_of(batch)
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss became {value} at epoch {epoch}, batch {i}; lower --lr "
                    f"(now {cfg.lr}) or keep --grad-clip on")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total, n = total + value, n + 1
            if i % 20 == 0:
                bar.set_postfix(loss=f"{total / n:.4f}")
        # DDP: rank 0 evaluates all users and sends its numbers and clock to the
        # others, so every rank takes the same early-stopping decision
        valid = evaluate(model, split, "valid", negatives=negs["valid"], **ev) if d.is_main else None
        seconds = time.perf_counter() - t0
        valid, seconds = d.broadcast((valid, seconds))
        score = valid["full"]["ndcg@10"]
        if score > st["best_score"]:
            st.update(best_score=score, best_epoch=epoch, bad=0)
            best = copy.deepcopy(model.state_dict())
        else:
            st["bad"] += 1
        st["seconds"] += seconds
        st["epoch"] = epoch
        st["history"].append({"epoch": epoch, "loss": total / max(n, 1), "seconds": round(seconds, 3),
                              "valid": valid})
        epochs_bar.update(1)
        epochs_bar.set_postfix(loss=f"{total / max(n, 1):.4f}", ndcg=f"{score:.4f}",
                               best=st["best_epoch"])
        rng_ranks = d.dropout_rngs() if out is not None else None  # DDP: every rank's; else None
        if out is not None and d.is_main:  # DDP: rank 0 writes
            save_checkpoint(out / "last.pt", {
                "config": cfg.to_dict(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                "best_model": best, "state": st, "rng": capture_rng(gen),
                **({"rng_ranks": rng_ranks} if rng_ranks is not None else {})})
        stopped = st["bad"] >= cfg.patience and epoch >= cfg.min_epochs
        if cfg.max_train_seconds is not None and st["seconds"] >= cfg.max_train_seconds:
            stopped = True
    epochs_bar.close()

    if best is not None:
        model.load_state_dict(best)
    if not d.is_main:  # DDP: rank 0 evaluates and writes the files; the others get its numbers
        return Result(model, d.broadcast(None), st["history"], split, data, cfg)
    valid = evaluate(model, split, "valid", negatives=negs["valid"], **ev)
    test = evaluate(model, split, "test", negatives=negs["test"], **ev)
    result = _metrics_json(cfg, device, st["epoch"], st["best_epoch"], st["seconds"], valid, test)
    result["split"] = {"tie_seed": cfg.tie_seed, **cold_targets(split),  # issue 12 (H3)
                       "n_held_out_items": len(cold)}  # lesson 10
    result["compiled"] = bool(compiled)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "history.json").write_text(json.dumps(st["history"], indent=2) + "\n")
    d.broadcast(result)
    return Result(model, result, st["history"], split, data, cfg)


def ddp_loss(ddp: torch.nn.Module, d: Dist):
    """DDP: ``(loss to backpropagate, global batch loss)`` for one global batch.

    The rank's loss is scaled by ``W n_r / n`` so that DDP's average of the
    ranks' gradients is the gradient of the global batch's mean loss.
    """
    def loss_of(batch):
        shard = d.shard(batch)
        w = d.shard_weight(shard, batch)
        if w == 0:  # no rows here (last batch smaller than W): zero gradient, computed on the
            shard = batch  # whole batch so every parameter still joins DDP's all-reduce
        loss = ddp(shard.to(d.device))
        return loss * (d.world_size * w), d.sum(loss.item() * w)
    return loss_of

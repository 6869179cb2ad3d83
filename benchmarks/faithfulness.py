"""Does attention find the planted cause? One JSON line of top-1 hit rates (lesson 06).

Trains the course's SASRec on synthetic sequences whose last item is caused
by one earlier item (``recattn_lessons.data.synthetic``), then, for fresh
users, asks four attribution methods which history position caused the
last item and prints how often each one names the planted cause:

    .venv/bin/python benchmarks/faithfulness.py            # 1 block (default)
    .venv/bin/python benchmarks/faithfulness.py --blocks 2 # attention drifts
    .venv/bin/python benchmarks/faithfulness.py --quick    # a few seconds

Output keys: ``attention_top1`` (last layer, mean over heads, final
query), ``gradient_top1`` (|gradient x input|), ``occlusion_top1`` (score
drop when the item is removed), ``uniform_top1`` (chance), plus
``rollout_top1``, ``attention_layer{i}_top1``, ``gradient_signed_top1``,
``effect_hit1`` (how often the model's top item is the planted effect),
``seconds`` and the settings.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

import torch

from recattn_lessons.faithfulness import CheckConfig, run_check


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer users and epochs (seconds)")
    p.add_argument("--blocks", type=int, default=None, help="SASRec blocks (default 1)")
    p.add_argument("--heads", type=int, default=None, help="heads per block (default 1)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--users", type=int, default=None, help="training users")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--progress", action="store_true", help="show a tqdm bar on stderr")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = CheckConfig.quick() if args.quick else CheckConfig()
    changes = {k: v for k, v in dict(n_blocks=args.blocks, n_heads=args.heads,
                                     epochs=args.epochs, seed=args.seed).items()
               if v is not None}
    cfg = replace(cfg, **changes)
    if args.users is not None:
        cfg = replace(cfg, data=replace(cfg.data, n_users=args.users))
    t = time.perf_counter()
    result = run_check(cfg, progress=args.progress)
    result["seconds"] = round(time.perf_counter() - t, 1)
    result["config"] = asdict(cfg)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

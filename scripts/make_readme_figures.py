"""Regenerate the README's attention figures from a quick training run (lesson 06).

    .venv/bin/python scripts/make_readme_figures.py            # all figures
    .venv/bin/python scripts/make_readme_figures.py --only faithfulness

Writes PNGs to ``docs/images/``:

- ``attention_heatmap.png``  one MovieLens user's history, SASRec's last
  layer (mean over heads), real titles;
- ``layer_head_grid.png``    the same user, every layer x head, one colour bar;
- ``din_weights.png``        DIN's weights on that user's recent history for
  the model's top-3 recommendations;
- ``faithfulness.png``       how often each attribution method names the
  planted cause, for 1- and 2-block SASRec on synthetic data.

Everything is seeded; CPU only, a few minutes (SASRec: the same 6-epoch
quick run as lesson 06).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from recattn_lessons.progress import tqdm  # noqa: E402

from recattn_lessons.data.batching import SeenIndex, iterate_batches, sliding_windows  # noqa: E402
from recattn_lessons.data.movielens import load_movielens  # noqa: E402
from recattn_lessons.data.splits import histories, leave_one_out  # noqa: E402
from recattn_lessons.faithfulness import CheckConfig, run_check  # noqa: E402
from recattn_lessons.models import build  # noqa: E402
from recattn_lessons.train import TrainConfig, run  # noqa: E402
from recattn_lessons.viz.recsys import (din_bars, faithfulness_bars,  # noqa: E402
                                        history_heatmap, layer_head_grid)

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
USER = 4  # a row of the split with a long, recognisable history
MAXLEN = 50


def _save(fig, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {OUT / name}")


def sasrec_figures(seed: int) -> None:
    res = run(TrainConfig.quick(model="sasrec", n_heads=2, n_blocks=2, maxlen=MAXLEN, seed=seed,
                                epochs=6, min_epochs=6))
    model, split, titles = res.model.eval(), res.split, res.data.titles
    print("SASRec test metrics:", json.dumps(res.metrics["test"]))
    h = histories(split, "test", MAXLEN)[USER:USER + 1]  # (1, L)
    with torch.no_grad():
        _, attn = model(h, return_attention=True)
    ax = history_heatmap(attn[-1][0].mean(0), h[0], titles, last=15,
                         title="SASRec, last layer, mean of 2 heads")
    _save(ax.figure, "attention_heatmap.png")
    _save(layer_head_grid(attn, h[0], titles, last=10,
                          suptitle="every layer x head, one colour scale"), "layer_head_grid.png")


def din_figure(seed: int, epochs: int = 3) -> None:
    """DIN trained for a few epochs with the course's batches and loss.

    (``train.run`` would evaluate DIN's full ranking after every epoch, an
    MLP over every item for every user: too slow for a figure on a CPU.)
    """
    data = load_movielens()
    split = leave_one_out(data)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build("din", data.n_items, maxlen=MAXLEN)
    windows = sliding_windows(split.train, MAXLEN)
    seen = SeenIndex(split.train, data.n_items)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in tqdm(range(epochs), desc="DIN epochs"):
        for batch in iterate_batches(windows, 128, gen, seen, model.n_negatives):
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    h = histories(split, "test", MAXLEN)[USER:USER + 1]  # (1, L)
    with torch.no_grad():
        scores = model.score(h)[0]
        scores[0] = float("-inf")
        scores[h[0][h[0] != 0]] = float("-inf")  # recommend unseen items only
        top = scores.topk(3).indices[None]  # (1, 3)
        _, w = model.score(h, top, return_attention=True)  # (1, 3, L)
    last = 15  # the 15 most recent items keep the chart readable
    _save(din_bars(w[0, :, -last:], h[0, -last:], data.titles, top[0]), "din_weights.png")


def faithfulness_figure() -> None:
    results = {}
    for blocks in (1, 2):
        r = run_check(CheckConfig(n_blocks=blocks, epochs=10))  # as in lesson 06
        print(f"{blocks} block(s):", json.dumps(r))
        results[f"{blocks} block" + ("s" if blocks > 1 else "")] = r
    ax = faithfulness_bars(results)
    ax.set_title("Which past item caused the last one? (planted data, 1000 users)")
    _save(ax.figure, "faithfulness.png")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=["sasrec", "din", "faithfulness"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 makes the numbers match lesson 06")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.only in (None, "sasrec"):
        sasrec_figures(args.seed)
    if args.only in (None, "din"):
        din_figure(args.seed)
    if args.only in (None, "faithfulness"):
        faithfulness_figure()


if __name__ == "__main__":
    main()

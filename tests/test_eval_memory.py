"""Evaluation streams (issue 12): 100,000 users x 20,000 items in under 2 GB.

A dense users x items boolean mask would be 2 GB on its own and a dense
users x longest-history int64 matrix several more; the streaming path keeps
the seen items as CSR and builds one batch's mask at a time. Measured in a
fresh subprocess (peak resident memory from ``resource``), one thread.

The subprocess measures what evaluation needs, not how the machine's allocator
rounds it. glibc raises its mmap threshold each time a large block is freed, so
the 16 MB per-chunk masks soon come from the heap, and where transparent huge
pages are ``always`` every touched 2 MB of that fragmented heap stays resident:
the same script peaked at 741 MB here (THP ``madvise``), 2,232 MB with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc's way to ask for huge pages,
which reproduces THP ``always``), and 3.2-5.8 GB on CI machines. A fixed
threshold (``MALLOC_MMAP_THRESHOLD_``) brings the huge-page case back to
692 MB; the subprocess also switches THP off for itself (``prctl``), so the
number is the same on every kernel setting.
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import ctypes, json, resource, sys, time
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE (Linux >= 3.15)
    import torch
    torch.set_num_threads(1)
    from recattn_lessons.data.splits import Split
    from recattn_lessons.models.baselines import Popularity, PopularityConfig
    from recattn_lessons.train.evaluate import eval_negatives, evaluate_ranks

    U, N = 100_000, 20_000
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 60, (U,), generator=g)
    lengths[:50] = 2_000  # a few very long users: a dense (U, longest) matrix would be 1.6 GB
    flat = torch.randint(1, N + 1, (int(lengths.sum()),), generator=g)
    train = list(torch.split(flat, lengths.tolist()))
    split = Split(train=train, valid_target=torch.randint(1, N + 1, (U,), generator=g),
                  test_target=torch.randint(1, N + 1, (U,), generator=g),
                  users=torch.arange(U), n_items=N)
    model = Popularity(PopularityConfig(N))
    model.fit_counts(train)
    t0 = time.perf_counter()
    negs = eval_negatives(split, "test", seed=0, n=100)
    ranks = evaluate_ranks(model, split, "test", maxlen=50, negatives=negs, batch_size=256)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds, "n": int(ranks["full"].numel()),
                      "neg_shape": list(negs.shape), "max_rank": int(ranks["full"].max())}))
""")


def test_evaluation_of_100k_users_x_20k_items_stays_under_2_gb():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["n"] == 100_000 and r["neg_shape"] == [100_000, 100]
    assert 0 < r["max_rank"] < 20_000
    assert r["peak_mb"] < 2048, f"peak resident memory {r['peak_mb']:.0f} MB >= 2 GB"

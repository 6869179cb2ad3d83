"""Command line: ``python -m recattn_lessons.serve --run DIR`` (issue 9).

Example::

    python -m recattn_lessons.train --model sasrec --out runs/sasrec
    python -m recattn_lessons.serve --run runs/sasrec --port 8000
    curl -s localhost:8000/recommend -H 'content-type: application/json' \\
        -d '{"history": [12, 7, 431], "k": 5}'

loads the run (:meth:`recattn_lessons.serving.Recommender.from_run`),
logs the URL and serves ``GET /health`` and ``POST /recommend`` with
uvicorn until Ctrl-C / SIGTERM. Requests are micro-batched
(``--batching on``, the default: what arrives within ``--max-wait-ms``
is scored in one forward pass; a full queue or a timeout is a 503);
``--batching off`` serves one request at a time behind a lock. It listens on 127.0.0.1 (this machine
only) unless ``--host`` says otherwise; the API has no authentication.
Mistakes end with a one-line error, not a traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

__all__ = ["main", "parser"]

log = logging.getLogger("recattn_lessons.serve")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the whole usage
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    from ..serving.app import MAX_HISTORY
    from ..serving.batcher import BatchConfig
    p = _Parser(prog="python -m recattn_lessons.serve",
                description="Serve a trained recommender over HTTP (GET /health, POST /recommend).")
    p.add_argument("--run", required=True, metavar="DIR",
                   help="folder written by python -m recattn_lessons.train --out DIR")
    p.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=int, default=8000, help="default: 8000")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: one request at a time uses one core)")
    p.add_argument("--max-history", type=int, default=MAX_HISTORY,
                   help=f"longest history a request may send (default {MAX_HISTORY})")
    p.add_argument("--batching", default="on", choices=["on", "off"],
                   help="micro-batch concurrent requests into one forward pass (default: on)")
    d = BatchConfig()
    p.add_argument("--max-batch", type=int, default=d.max_batch,
                   help=f"most requests per forward pass (default {d.max_batch})")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help=f"how long a batch waits for more requests (default {d.max_wait_ms})")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help=f"waiting requests beyond this get a 503 (default {d.max_queue})")
    p.add_argument("--request-timeout", type=float, default=d.timeout_s,
                   help=f"seconds before a waiting request gets a 503 (default {d.timeout_s})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be in 0..65535, got {args.port}")
    if args.threads < 1 or args.max_history < 1:
        p.error("--threads and --max-history must be at least 1")
    from ..serving.batcher import BatchConfig
    try:
        batching = None if args.batching == "off" else BatchConfig(
            args.max_batch, args.max_wait_ms, args.max_queue, args.request_timeout)
    except ValueError as err:
        p.error(str(err))
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    import torch
    import uvicorn

    from ..serving import Recommender
    from ..serving.app import create_app

    torch.set_num_threads(args.threads)  # process-wide, which is what a server is
    try:
        rec = Recommender.from_run(args.run)
    except (ValueError, TypeError, RuntimeError, OSError, KeyError) as err:
        p.error(f"cannot load {args.run}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: reachable from other machines, and the API has no "
                    "authentication", args.host)
    log.info("serving %s (%d items, maxlen %d) at http://%s:%d  (POST /recommend, GET /health)"
             "; batching %s", rec.name, rec.n_items, rec.maxlen, args.host, args.port,
             "off" if batching is None else f"up to {batching.max_batch} per pass")
    app = create_app(rec, max_history=args.max_history, batching=batching)
    # Everything loaded so far (torch, pandas, the model) lives as long as the server:
    # freeze it out of the garbage collector, whose full passes over those millions of
    # objects otherwise stall every in-flight request (~100 ms at the load test's p99).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

"""``python -m recattn_lessons.site build|serve [--out _site] [--port 8000]``.

Introduced with the course site (issue 16); ``make site`` and ``make
serve-site`` run exactly these. ``build`` writes the site into ``--out``
(git-ignored ``_site/``); ``serve`` builds it when missing and serves it on
127.0.0.1 only, until Ctrl+C.
"""

from __future__ import annotations

import argparse
import functools
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recattn_lessons.site.build import build


def serve(out: Path, port: int) -> None:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(out))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {out} at http://127.0.0.1:{server.server_port}/ (Ctrl+C stops)",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recattn_lessons.site")
    parser.add_argument("command", choices=["build", "serve"])
    parser.add_argument("--root", default=".", help="the course folder (default: here)")
    parser.add_argument("--out", default="_site", help="where the site goes (default: _site)")
    parser.add_argument("--port", type=int, default=8000, help="serve: the port (0 = any free)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.command == "build" or not (out / "index.html").exists():
        start = time.perf_counter()
        pages = build(args.root, out, log=lambda line: None)
        print(f"built {len(pages)} pages into {out}/ in {time.perf_counter() - start:.1f} s; "
              f"open {out}/index.html, or serve it: python -m recattn_lessons.site serve")
    if args.command == "serve":
        serve(out, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

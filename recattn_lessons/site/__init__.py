"""The course as a static website (issue 16): build it, serve it on 127.0.0.1.

``python -m recattn_lessons.site build`` writes ``_site/`` from the committed
notebook outputs (nothing runs, nothing is downloaded);
``python -m recattn_lessons.site serve`` serves it at http://127.0.0.1:8000/.
"""

from recattn_lessons.site.build import Page, build, collect_pages

__all__ = ["Page", "build", "collect_pages"]

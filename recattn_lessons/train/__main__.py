"""``python -m recattn_lessons.train``: see :mod:`recattn_lessons.train.cli`."""

import sys

from .cli import main

main(sys.argv[1:])

"""``python -m recattn_lessons.serve``: see :mod:`recattn_lessons.serve`."""

import sys

from . import main

main(sys.argv[1:])

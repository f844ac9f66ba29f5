"""``python -m rxkube``: the same command line as the ``rxkube`` console script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())

"""``python -m rxkube`` and the ``rxkube`` console script: the command line of ``rxkube.cli``.

Nothing is imported before the ``try`` below, and ``import rxkube`` imports nothing: a
Ctrl+C while the command line's own modules are still being imported ends, like one
during a command, with one line and exit status 130, never a traceback.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Run the command line on ``sys.argv[1:]``; return its exit status."""
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("rxkube: interrupted", file=sys.stderr, flush=True)
        return 130  # cli.EXIT_INTERRUPTED, which may be what the interrupt stopped importing
    return run()


if __name__ == "__main__":
    sys.exit(main())

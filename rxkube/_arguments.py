"""Command-line argument types that ``python -m rxkube`` and ``python -m rxkube.testing`` share."""

from __future__ import annotations

import argparse

__all__ = ["whole_number"]


def whole_number(text: str) -> int:
    """``text`` as a whole number of at least 1, for an ``argparse`` ``type=``.

    Raises:
        argparse.ArgumentTypeError: it is not one; argparse prints the message in one line.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value

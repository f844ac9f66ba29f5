"""A griffe extension for the API reference: read docstrings written for Sphinx habits.

Google style allows both ``Example:`` and ``Examples:``; griffe reads only the plural as
doctest code and the singular as an admonition, where ``>>>`` lines would render as
nested quotes. Sphinx roles (``:func:`watcher```, ``:class:`~rxkube.store.Store```) are
not Markdown: they become plain code spans. Loaded by mkdocstrings through
``mkdocs.yml``; not part of the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):`~?([^`]+)`")


def _short(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = target.rsplit(".", 1)[-1] if match.group(0).count("~") else target
    return f"`{shown}`"


class SphinxHabits(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` and turn roles into code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each loaded object before it is parsed."""
        if obj.docstring is not None:
            text = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(_short, text)

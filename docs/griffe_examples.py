"""A griffe extension for the API reference: read ``Example:`` as an examples section.

Google style allows both ``Example:`` and ``Examples:``; griffe reads only the plural as
doctest code and the singular as an admonition, where ``>>>`` lines would render as
nested quotes. Loaded by mkdocstrings through ``mkdocs.yml``; not part of the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename every ``Example:`` section header to ``Examples:`` before parsing."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each loaded object."""
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)

"""A griffe extension for the API reference: read docstrings written for Sphinx habits.

Google style allows both ``Example:`` and ``Examples:``; griffe reads only the plural as
doctest code and the singular as an admonition, where ``>>>`` lines would render as
nested quotes. Sphinx roles (``:func:`watcher```, ``:class:`~rxkube.store.Store```) are
not Markdown: they become plain code spans. A reST literal block (a paragraph ending in
``::`` and an indented block after it) becomes a fenced block: Python where it parses
as Python, plain text otherwise. Loaded by mkdocstrings through ``mkdocs.yml``; not part
of the site.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):`~?([^`]+)`")


def literal_blocks(text: str) -> str:
    """Turn reST literal blocks (``text::`` then an indented block) into fenced blocks."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if not stripped.endswith("::"):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        start = i + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        end = start
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
        ):
            end += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        if end == start:  # no indented block follows: an ordinary "::" in prose
            out.append(line)
            i += 1
            continue
        lead = stripped[:-2].rstrip()
        if lead.strip():
            out.append(lead + ("" if stripped.endswith(" ::") else ":"))
        body = lines[start:end]
        depth = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        code = "\n".join(b[depth:] for b in body)
        try:
            ast.parse(code)
            language = "python"
        except SyntaxError:
            language = "text"
        pad = " " * indent
        out += ["", f"{pad}```{language}", *(pad + b[depth:] if b.strip() else "" for b in body)]
        out += [f"{pad}```"]
        i = end
    return "\n".join(out)


def _short(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = target.rsplit(".", 1)[-1] if match.group(0).count("~") else target
    return f"`{shown}`"


class SphinxHabits(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` and turn roles into code."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each loaded object before it is parsed."""
        if obj.docstring is not None:
            text = literal_blocks(_SINGULAR.sub(r"\1Examples:", obj.docstring.value))
            obj.docstring.value = _ROLE.sub(_short, text)

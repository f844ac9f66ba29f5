"""Every Python example in README.md and docs/*.md runs, so the documentation cannot rot.

The convention, for everyone writing docs:

- Every fenced block whose info string starts with ``python`` (```` ```python ```` or
  ```` ```python title="..." ````) is executed. Other fences (``bash``, ``text``, ``pycon``,
  ``yaml``...) are not.
- The blocks of one page run in order, in one namespace, so a later block can use what an
  earlier one defined. Each page is one test, named after the file.
- The namespace starts with ``srv``: a running ``rxkube.testing.ApiServer``, new for each
  page. ``KUBECONFIG`` points at a kubeconfig written for it (and in-cluster variables are
  unset), so ``Client.default()`` and ``Client.from_kubeconfig()`` reach ``srv``: an example
  written for a real cluster runs unchanged against it.
- The working directory is a fresh temporary directory.
- Put ``<!-- no-run -->`` on the line before a fence (blank lines between are fine) to skip that block: for an example
  that needs a real cluster's features, runs forever, or shows a deliberate error.
- At the end of a page, every top-level name whose value has a ``dispose()`` method (a
  subscription) is disposed, then ``srv`` stops. Anything else a page starts must be
  stopped by the page itself: the suite fails a test that leaves an ``rxkube-*`` thread behind.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NO_RUN = "<!-- no-run -->"
SETUP_MARK = "<!-- setup -->"
README_SETUP = ['pip install -e ".[dev]"', "python -m pytest"]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    info: str
    code: str
    line: int  # 1-based line number of the first line of code
    skipped: bool

    @property
    def language(self) -> str:
        """The first word of the info string, e.g. ``python``."""
        return self.info.split(maxsplit=1)[0] if self.info.strip() else ""


def blocks(text: str) -> Iterator[Block]:
    """The fenced code blocks of a Markdown text, with their position and skip marker."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            # A fence indented inside a list: its lines carry the same indent.
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            j += 1
        yield Block(opening["info"].strip().strip("{}"), "\n".join(body), i + 2, previous == NO_RUN)
        i = j + 1


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _dispose_all(namespace: dict[str, Any]) -> None:
    for name, value in list(namespace.items()):
        dispose = getattr(value, "dispose", None)
        if name.startswith("__") or not callable(dispose) or isinstance(value, type | ModuleType):
            continue
        dispose()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's ``python`` blocks run in order against a fresh API server."""
    from rxkube.testing import ApiServer

    runnable = [b for b in blocks(page.read_text()) if b.language == "python" and not b.skipped]
    if not runnable:
        pytest.skip(f"{_page_id(page)} has no runnable python block")
    monkeypatch.chdir(tmp_path)
    for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(variable, raising=False)
    with ApiServer() as srv:
        kubeconfig = tmp_path / "kubeconfig"
        srv.write_kubeconfig(kubeconfig)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        namespace: dict[str, Any] = {"__name__": f"docs:{_page_id(page)}", "srv": srv}
        try:
            for block in runnable:
                # Padding keeps tracebacks pointing at the right line of the page.
                code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
                exec(code, namespace)
        finally:
            _dispose_all(namespace)


def test_blocks_parser_reads_fences_and_skip_markers() -> None:
    text = (
        'intro\n\n<!-- no-run -->\n```python\nskipped()\n```\n\n```python title="x"\na = 1\n```\n'
    )
    found = list(blocks(text))
    assert [(b.language, b.code, b.skipped) for b in found] == [
        ("python", "skipped()", True),
        ("python", "a = 1", False),
    ]
    assert found[1].line == 9


def test_readme_setup_is_exactly_the_two_commands_ci_runs() -> None:
    """.ci/run extracts the block after ``<!-- setup -->``; it must stay these two commands."""
    text = (ROOT / "README.md").read_text()
    assert SETUP_MARK in text
    after = text.split(SETUP_MARK, 1)[1]
    first = next(blocks(after))
    assert first.language == "bash"
    assert first.code.splitlines() == README_SETUP
    assert SETUP_MARK in (ROOT / ".ci" / "run").read_text()


def test_rest_literal_blocks_become_fenced_blocks() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from _griffe_docstrings import literal_blocks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    text = "Pipe it in::\n\n    source.pipe(op)\n\nStates::\n\n    A --x--> B\n\nEnds here::"
    assert literal_blocks(text).splitlines() == [
        "Pipe it in:",
        "",
        "```python",
        "source.pipe(op)",
        "```",
        "",
        "States:",
        "",
        "```text",
        "A --x--> B",
        "```",
        "",
        "Ends here::",  # nothing indented follows: prose, left alone
    ]


def test_site_builds_for_offline_reading(tmp_path: Path) -> None:
    """The built site loads nothing from other hosts, highlights code, and its API
    reference has no literal ``::`` left from reST docstrings."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = (site / "api" / "index.html").read_text()
    assert re.findall(r".{0,60}::\s*</p>", page) == []
    for html in site.rglob("*.html"):
        remote = re.findall(r'(?:src|href)="(https?://[^"]+\.(?:js|css))"', html.read_text())
        assert remote == [], f"{html.relative_to(site)} loads {remote}"
    assert 'class="highlight"' in (site / "store" / "index.html").read_text()


_WRITES = re.compile(r"(?<!reactivex)(?<!srv)\.(create|patch|replace|replace_status|delete)\(")


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_examples_that_write_say_so_and_keep_out_of_the_default_namespace(page: Path) -> None:
    """Pasted against a real cluster, an example must not write to the user's namespaces."""
    code = "\n".join(b.code for b in blocks(page.read_text()) if b.language == "python")
    if "Client.default()" not in code or not _WRITES.search(code):
        return
    assert 'namespace="default"' not in code and '"namespace": "default"' not in code
    assert "These examples write to the cluster" in page.read_text()

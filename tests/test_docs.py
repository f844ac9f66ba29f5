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
- A comment that ends a ``print(...)`` statement is the output it shows, and is checked:
  ``print(len(reader))  # 3``. So is a run of comment lines right below a ``print`` that has
  no comment of its own (one line each of the output). ``...`` in the comment stands for
  any text; anything said about the output goes in the prose or on a line of its own
  above. Each such ``print`` must run at least once.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeGuard

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


@dataclass(frozen=True)
class Shown:
    """A ``print`` whose output its page shows in a comment."""

    first: int  # the statement's lines in the page, 1-based
    last: int
    expected: str

    def matches(self, printed: str) -> bool:
        """Whether ``printed`` is the output shown, ``...`` standing for any text."""
        pattern = ".*".join(re.escape(part) for part in self.expected.split("..."))
        return re.fullmatch(pattern, printed, re.DOTALL) is not None


def _is_print(node: ast.AST) -> TypeGuard[ast.Expr]:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "print"
    )


def shown_outputs(block: Block) -> list[Shown]:
    """The ``print`` statements of a block that show their output in a comment."""
    lines = block.code.splitlines()
    comments = {
        token.start[0]: token
        for token in tokenize.generate_tokens(io.StringIO(block.code).readline)
        if token.type == tokenize.COMMENT
    }
    found = []
    for node in ast.walk(ast.parse(block.code)):
        if not _is_print(node):
            continue
        assert node.end_lineno is not None and node.end_col_offset is not None
        trailing = comments.get(node.end_lineno)
        if trailing is not None and trailing.start[1] >= node.end_col_offset:
            shown = [trailing.string]
        else:
            shown = []
            for line in lines[node.end_lineno :]:
                if not line.strip().startswith("#"):
                    break
                shown.append(line.strip())
        if shown:
            expected = "\n".join(line.removeprefix("#").strip() for line in shown)
            offset = block.line - 1
            found.append(Shown(node.lineno + offset, node.end_lineno + offset, expected))
    return found


class ShownChecker:
    """A ``print`` for a page's namespace: prints, and checks what the page says it shows."""

    def __init__(self, page: Path, shown: list[Shown]) -> None:
        self.page = page
        self.shown = shown
        self.ran: set[Shown] = set()
        self.wrong: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        buffer = io.StringIO()
        builtins.print(*args, **{**kwargs, "file": buffer})
        printed = buffer.getvalue()
        sys.stdout.write(printed)
        caller = sys._getframe(1)
        if caller.f_code.co_filename != str(self.page):
            return
        line = caller.f_lineno
        for shown in self.shown:
            if shown.first <= line <= shown.last:
                self.ran.add(shown)
                if not shown.matches(printed.removesuffix("\n")):
                    self.wrong.append(
                        f"{_page_id(self.page)}:{shown.first}: shows {shown.expected!r}, "
                        f"printed {printed.removesuffix(chr(10))!r}"
                    )

    def check(self) -> None:
        """Fail on every output shown wrongly, and on every checked ``print`` that never ran."""
        never = [
            f"{_page_id(self.page)}:{s.first}: never ran" for s in self.shown if s not in self.ran
        ]
        problems = self.wrong + never
        assert not problems, "\n".join(problems)


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
        shown = ShownChecker(page, [s for block in runnable for s in shown_outputs(block)])
        namespace: dict[str, Any] = {
            "__name__": f"docs:{_page_id(page)}",
            "srv": srv,
            "print": shown,
        }
        try:
            for block in runnable:
                # Padding keeps tracebacks pointing at the right line of the page.
                code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
                exec(code, namespace)
        finally:
            _dispose_all(namespace)
    shown.check()


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


def test_shown_outputs_are_read_from_the_comment_ending_a_print_or_the_lines_below() -> None:
    code = (
        "print(1)  # 1\n"
        "print(\n    2\n)  # 2 ...\n"
        "print(3)\n# three\n# lines\nx = 4  # not shown\n"
        "print(5)\n\n# a comment after a blank line is prose\n"
        "for i in range(2):\n    print(i)  # ...\n"
    )
    found = shown_outputs(Block("python", code, 10, skipped=False))
    assert sorted((s.first, s.last, s.expected) for s in found) == [
        (10, 10, "1"),
        (11, 13, "2 ..."),
        (14, 14, "three\nlines"),
        (22, 22, "..."),
    ]
    two = next(s for s in found if s.first == 11)
    assert two.matches("2 and more") and not two.matches("20")
    assert not Shown(1, 1, "1").matches("1 more")


def test_a_wrong_or_unrun_shown_output_fails_the_page() -> None:
    page = ROOT / "docs" / "a-page.md"  # named only
    block = Block("python", "print(1 + 1)  # 3\nif False:\n    print(4)  # 4\n", 1, False)
    checker = ShownChecker(page, shown_outputs(block))
    exec(compile(block.code, str(page), "exec"), {"print": checker})
    with pytest.raises(AssertionError) as failed:
        checker.check()
    assert "shows '3', printed '2'" in str(failed.value)
    assert ":3: never ran" in str(failed.value)


def test_the_docs_state_the_reactivex_floor_that_pyproject_installs() -> None:
    floor = re.search(r'"reactivex>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert floor is not None
    intro = f"[`reactivex`](https://github.com/ReactiveX/RxPY) {floor[1]} or later"
    assert intro in (ROOT / "docs" / "index.md").read_text()
    assert f"{floor[1]} or later" in (ROOT / "docs" / "architecture.md").read_text()


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

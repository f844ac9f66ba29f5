"""``import rxkube`` imports nothing; each public name is imported from its module on first use.

Each check runs in a fresh interpreter: in this one, the suite has imported most of the
package already, which would hide an eager import or a name that resolves only by luck.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import rxkube

INIT = Path(rxkube.__file__)
DEADLINE = 60.0


def run(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (its failure fails the test)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_rxkube_imports_no_other_module_of_rxkube_nor_its_dependencies() -> None:
    out = run(
        """
        import sys
        before = set(sys.modules)
        import rxkube
        print(sorted(set(sys.modules) - before))
        """
    )
    assert out.strip() == "['__future__', 'rxkube']"  # from __future__ import annotations


def test_every_public_name_is_the_object_its_module_defines() -> None:
    out = run(
        """
        import importlib, types
        import rxkube
        homes = {name: home for home, names in rxkube._HOMES.items() for name in names}
        for name in rxkube.__all__:
            value = getattr(rxkube, name)
            if name in homes:
                assert value is getattr(importlib.import_module(homes[name], "rxkube"), name), name
            else:
                assert isinstance(value, types.ModuleType), name
                assert value is importlib.import_module(f"rxkube.{name}"), name
        from rxkube import Store, errors, watcher
        assert (Store, errors, watcher) == (rxkube.Store, rxkube.errors, rxkube.watcher)
        assert set(rxkube.__all__) <= set(dir(rxkube))
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_a_public_name_is_listed_by_dir_before_its_first_use() -> None:
    out = run("import rxkube; print(set(rxkube.__all__) <= set(dir(rxkube)))")
    assert out.strip() == "True"


def test_a_public_submodule_is_an_attribute_as_when_the_package_imported_everything() -> None:
    out = run("import rxkube; print(rxkube.operators.modify is rxkube.modify)")
    assert out.strip() == "True"


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    out = run(
        """
        import rxkube
        for name in ("wacther", "_cache", "__main__", "testing.pytest_plugin"):
            try:
                getattr(rxkube, name)
            except AttributeError as exc:
                print(exc)
        print(hasattr(rxkube, "wacther"))
        """
    )
    assert out.splitlines() == [
        "module 'rxkube' has no attribute 'wacther'",
        "module 'rxkube' has no attribute '_cache'",
        "module 'rxkube' has no attribute '__main__'",
        "module 'rxkube' has no attribute 'testing.pytest_plugin'",
        "False",
    ]


def test_a_name_whose_module_fails_to_import_raises_that_error() -> None:
    out = run(
        """
        import sys
        sys.modules["reactivex"] = None  # import reactivex now fails, as if not installed
        import rxkube
        for _ in range(2):  # the second try fails alike: nothing half-imported was kept
            try:
                getattr(rxkube, "watcher", "a default hides the error")
            except ImportError as exc:
                print(type(exc).__name__, exc.name)
        """
    )
    assert out.splitlines() == ["ModuleNotFoundError reactivex"] * 2


def test_an_attribute_error_while_importing_a_module_is_an_import_error() -> None:
    out = run(
        """
        import sys, types
        sys.modules["orjson"] = types.ModuleType("orjson")  # present, but empty
        import rxkube
        try:
            getattr(rxkube, "Store", "a default hides the error")  # _cache reads orjson.loads
        except ImportError as exc:
            print(type(exc).__name__, type(exc.__cause__).__name__)
        """
    )
    assert out.splitlines() == ["ImportError AttributeError"]


def _type_checking_imports() -> dict[str, tuple[str, ...]]:
    """What ``rxkube/__init__.py`` imports under TYPE_CHECKING: module -> names."""
    tree = ast.parse(INIT.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    found: dict[str, tuple[str, ...]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        found["." + (node.module or "")] = tuple(alias.name for alias in node.names)
    return found


def test_type_checkers_see_the_imports_done_at_run_time_and_nothing_else() -> None:
    """Type checkers, IDEs and tests/test_layers.py read the TYPE_CHECKING imports."""
    seen = _type_checking_imports()
    submodules = seen.pop(".")
    assert seen == rxkube._HOMES
    names = [name for names in rxkube._HOMES.values() for name in names]
    assert len(names) == len(set(names))
    assert sorted(rxkube.__all__) == sorted([*names, *submodules])

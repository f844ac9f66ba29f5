"""Differential checks: one scenario of requests run against rxkube's test server and a
real kube-apiserver, their answers compared field by field.

A scenario is a function of a :class:`Side`: it makes requests (each recorded under a
label) and may read their answers to make the next ones. :class:`Pair` runs it on both
servers, each in a fresh namespace of the same name, normalises what must differ between
two clusters (uids, timestamps, resourceVersion values, generated names, allocated IPs
and ports) and compares the records path by path. A difference the test server keeps on
purpose (it answers as v1.32; the real server is v1.36) is declared where it is
expected, with both values, so that it is checked too: a declared difference that is not
there any more fails the test as loudly as an undeclared one.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rxkube.testing import ApiServer, EnvtestServer
from tests.apiserver_http import Http, Watch

Server = ApiServer | EnvtestServer

_namespaces = itertools.count()
_namespace_lock = threading.Lock()

_TIME_KEYS = frozenset(
    {"creationTimestamp", "deletionTimestamp", "time", "lastTransitionTime", "startTime"}
)
_ALLOCATED_KEYS = frozenset({"clusterIP", "clusterIPs", "nodePort"})
_GENERATED_SUFFIX = 5
"""Characters ``generateName`` appends (apiserver ``names.SimpleNameGenerator``)."""

_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_QUOTED_NUMBER = re.compile(r"(?<=\()\d+(?=\))|(?<=version: )\d+")
"""Where a message quotes a resourceVersion: ``in record (235)``, ``resource version: 245``."""

MISSING = "<missing>"
"""A path present on one side only shows this on the other."""


@dataclass(frozen=True)
class _Seen:
    """What one side's answers held that its messages may quote."""

    generated: Mapping[str, str]
    versions: frozenset[str]


def _normalise(value: Any, seen: _Seen, key: str = "") -> Any:
    """``value`` with what differs between two clusters replaced by placeholders."""
    if isinstance(value, dict):
        return {k: _normalise(v, seen, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "managedFields":
            # Entries are ordered by their times, of a second's resolution: a tie on
            # one server and not the other reorders them.
            value = sorted(value, key=_entry_order)
        return [_normalise(v, seen, key) for v in value]
    if not isinstance(value, str):
        return "<allocated>" if key in _ALLOCATED_KEYS and value else value
    if key == "uid" and value:
        return "<uid>"
    if key in _TIME_KEYS and value:
        return "<time>"
    if key == "resourceVersion" and value:
        return "<rv>"
    if key in _ALLOCATED_KEYS and value and value != "None":
        return "<allocated>"
    if key == "continue" and value:
        return _continue_token(value)
    for name, placeholder in seen.generated.items():
        value = value.replace(name, placeholder)
    value = _UID.sub("<uid>", value)
    return _QUOTED_NUMBER.sub(lambda m: "<rv>" if m[0] in seen.versions else m[0], value)


def _continue_token(token: str) -> Any:
    """A continue token decoded (base64url JSON, apiserver ``storage.EncodeContinue``) with
    its resourceVersion replaced, so its start key is compared."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        return token
    if isinstance(decoded, dict) and "rv" in decoded:
        decoded["rv"] = "<rv>"
    return {"<continue>": decoded}


def _entry_order(entry: Any) -> tuple[str, ...]:
    if not isinstance(entry, dict):
        return ()
    return tuple(str(entry.get(k, "")) for k in ("manager", "operation", "subresource"))


def _versions(value: Any, found: set[str]) -> None:
    """Every resourceVersion in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "resourceVersion" and isinstance(v, str):
                found.add(v)
            _versions(v, found)
    elif isinstance(value, list):
        for v in value:
            _versions(v, found)


def _generated_names(value: Any, found: dict[str, str]) -> None:
    """Every name made from a ``generateName``, mapped to ``<prefix><generated>``."""
    if isinstance(value, dict):
        meta = value.get("metadata")
        if isinstance(meta, dict):
            prefix, name = meta.get("generateName"), meta.get("name")
            if (
                isinstance(prefix, str)
                and isinstance(name, str)
                and name.startswith(prefix)
                and len(name) == len(prefix) + _GENERATED_SUFFIX
            ):
                found[name] = prefix + "<generated>"
        for v in value.values():
            _generated_names(v, found)
    elif isinstance(value, list):
        for v in value:
            _generated_names(v, found)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{path}.{k}", out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = value


@dataclass
class Side:
    """One server's half of a scenario: requests over real HTTP, their answers recorded.

    Paths may hold ``{ns}``, the scenario's namespace. Every answer is recorded under its
    label (``METHOD path`` unless one is given) and returned as ``(status, body)``.
    """

    server: Server
    namespace: str
    is_real: bool
    records: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def http(self) -> Http:
        return Http(self.server, self.server.token)

    def _label(self, label: str | None, method: str, path: str) -> str:
        label = label or f"{method} {path}"
        taken = {name for name, _ in self.records}
        for n in itertools.count(2):
            if label not in taken:
                return label
            label = f"{label.rsplit(' #', 1)[0]} #{n}"
        raise AssertionError("unreachable")

    def record(self, label: str, value: Any) -> None:
        """Record ``value`` (already read) for comparison under ``label``."""
        self.records.append((self._label(label, "", ""), value))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        label: str | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        record: bool = True,
        **params: Any,
    ) -> tuple[int, Any]:
        """One request, recorded as ``{"status": ..., "body": ...}`` unless ``record`` is
        False (the scenario records what it wants of the answer)."""
        label = self._label(label, method, path)
        path = path.format(ns=self.namespace)
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        if isinstance(body, str):
            body = body.encode()
        status, answer, response = self.http.request(method, path, body, headers=sent, **params)
        if isinstance(answer, bytes):
            answer = answer.decode(errors="replace")
        entry: dict[str, Any] = {"status": status, "body": answer}
        warnings = response.headers.get_all("Warning")
        if warnings:
            entry["warnings"] = warnings
        if record:
            self.records.append((label, entry))
        return status, answer

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return self.request("GET", path, **params)

    def post(self, path: str, body: Any, **params: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **params)

    def put(self, path: str, body: Any, **params: Any) -> tuple[int, Any]:
        return self.request("PUT", path, body, **params)

    def delete(self, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        return self.request("DELETE", path, body, **params)

    def patch(self, path: str, body: Any, content_type: str, **params: Any) -> tuple[int, Any]:
        return self.request("PATCH", path, body, content_type=content_type, **params)

    @contextmanager
    def watch(self, path: str, timeout: float = 30.0, **params: Any) -> Iterator[Watch]:
        """An open watch (``watch=1`` and ``params``); read it with :func:`events`."""
        with self.http.watch(path.format(ns=self.namespace), timeout=timeout, **params) as w:
            yield w


def events(side: Side, label: str, watch: Watch, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events of ``watch`` but for the periodic BOOKMARKs (a real server
    sends them when it likes, the test server every ``bookmark_interval``), recorded."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        event = watch.next()
        annotations = (event["object"].get("metadata") or {}).get("annotations") or {}
        if event["type"] == "BOOKMARK" and "k8s.io/initial-events-end" not in annotations:
            continue
        out.append(event)
    side.record(label, {"status": watch.status, "events": out})
    return out


Scenario = Callable[[Side], None]


class Pair:
    """rxkube's test server and a real kube-apiserver, for scenarios run on both."""

    def __init__(self, test_server: ApiServer, real: EnvtestServer) -> None:
        self.test_server = test_server
        self.real = real

    def run(self, scenario: Scenario) -> tuple[Side, Side]:
        """``scenario`` on each server, in a new namespace of the same name."""
        with _namespace_lock:
            namespace = f"fidelity-{next(_namespaces)}"
        sides = []
        for server, is_real in ((self.test_server, False), (self.real, True)):
            side = Side(server, namespace, is_real)
            status, body, _ = side.http.request(
                "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}}
            )
            assert status == 201, body
            scenario(side)
            sides.append(side)
        return sides[0], sides[1]

    def same(
        self,
        scenario: Scenario,
        expected: Mapping[str, tuple[Any, Any]] | None = None,
        *,
        reworded: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Assert that both servers answer ``scenario`` alike, but for the ``expected``
        differences ``{path: (test server's value, real server's value)}`` and the
        ``reworded`` messages: ``(v1.32's words, v1.36's)``, replaced in the test
        server's strings before comparing; each must have been found."""
        ours, real = self.run(scenario)
        used: set[tuple[str, str]] = set()
        found = compare(ours, real, lambda text: _reword(text, reworded, used))
        expected = dict(expected or {})
        unused = [pair for pair in reworded if pair not in used]
        assert found == expected and not unused, report(found, expected, unused)


def _reword(text: str, reworded: Sequence[tuple[str, str]], used: set[tuple[str, str]]) -> str:
    for old, new in reworded:
        if old in text:
            used.add((old, new))
            text = text.replace(old, new)
    return text


def compare(
    ours: Side, real: Side, reword: Callable[[str], str] = str
) -> dict[str, tuple[Any, Any]]:
    """The differing paths of two sides' records, normalised (and the test server's
    strings passed through ``reword``)."""
    labels = [label for label, _ in ours.records]
    assert labels == [label for label, _ in real.records], "the scenario made other requests"
    flat: list[dict[str, Any]] = []
    for side in (ours, real):
        generated: dict[str, str] = {}
        versions: set[str] = set()
        for _, value in side.records:
            _generated_names(value, generated)
            _versions(value, versions)
        seen = _Seen(generated, frozenset(versions))
        out: dict[str, Any] = {}
        for label, value in side.records:
            _flatten(_normalise(value, seen), label, out)
        if side is ours:
            out = {k: reword(v) if isinstance(v, str) else v for k, v in out.items()}
        flat.append(out)
    mine, theirs = flat
    return {
        path: (mine.get(path, MISSING), theirs.get(path, MISSING))
        for path in sorted(mine.keys() | theirs.keys(), key=_path_order(mine, theirs))
        if _differ(mine.get(path, MISSING), theirs.get(path, MISSING))
    }


def _differ(a: Any, b: Any) -> bool:
    # 1 == 1.0 in Python, but not on the wire: a client decoding an int64 gets an error
    # for 1.0 (and JSON decoders give a float for one, an int for the other).
    return bool(a != b) or type(a) is not type(b)


def _path_order(*flats: dict[str, Any]) -> Callable[[str], int]:
    order = {p: i for i, p in enumerate(dict.fromkeys(p for f in flats for p in f))}
    return order.__getitem__


def report(
    found: Mapping[str, tuple[Any, Any]],
    expected: Mapping[str, tuple[Any, Any]],
    unused: Sequence[tuple[str, str]] = (),
) -> str:
    """The unexpected and the missing differences, one per line."""
    lines = [f"  rewording {old!r} -> {new!r} expected, but not found" for old, new in unused]
    for path, (mine, theirs) in found.items():
        if expected.get(path) != (mine, theirs):
            lines.append(
                f"  {path}:\n      test server: {mine!r}\n      kube-apiserver: {theirs!r}"
            )
    for path in expected.keys() - found.keys():
        lines.append(f"  {path}: expected to differ, but both answer {expected[path][1]!r}")
    return "the servers answer differently:\n" + "\n".join(lines)


NUMBERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "i": {"type": "integer"},
                "i32": {"type": "integer", "format": "int32"},
                "n": {"type": "number"},
                "s": {"type": "string"},
                "nullable": {"type": "string", "nullable": True},
                "defaulted": {"type": "string", "default": "d"},
                "nullable_defaulted": {"type": "string", "nullable": True, "default": "d"},
                "o": {"type": "object", "properties": {"x": {"type": "string"}}},
                "ints": {"type": "array", "items": {"type": "integer"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    },
}
"""A custom resource schema of numbers, nulls and defaults."""

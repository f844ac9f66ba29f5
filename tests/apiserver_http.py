"""A small HTTP client for tests of :class:`rxkube.testing.ApiServer`, and its watch reader.

``Http`` speaks to one server over ``http.client`` the way a plain API client does, so the
tests see exactly what the server answers. Every request returns ``(status, body, response)``:
the body is decoded JSON when the answer is a JSON object and the raw bytes otherwise, and the
(already read) response is there for its headers. ``get`` and ``apply`` are shorthands that
return ``(status, body)``.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from rxkube.testing import ApiServer, EnvtestServer

APPLY = "application/apply-patch+yaml"
USER_AGENT = "tester/1.0"
"""Sent unless a request's headers say otherwise: a write's default field manager is ``tester``."""


class Http:
    """JSON requests to one server and line-by-line watches, with an optional bearer token."""

    def __init__(self, srv: ApiServer | EnvtestServer, token: str | None = None) -> None:
        self.url = urllib.parse.urlsplit(srv.url)
        self.token = token
        self.ca_file = srv.ca_file

    def connect(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        host, port = self.url.hostname or "", self.url.port or 0
        if self.url.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        """``(status, body, response)`` of one request; a dict or list ``body`` is sent as JSON."""
        conn = self.connect()
        try:
            data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
            hdrs = self._headers(headers)
            if data is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, self.path(path, params), body=data, headers=hdrs)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw.startswith(b"{") else raw, response
        finally:
            conn.close()

    @staticmethod
    def path(path: str, params: dict[str, Any]) -> str:
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
        return path + ("?" + urllib.parse.urlencode(query) if query else "")

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        """``(status, body)`` of a GET."""
        status, body, _ = self.request("GET", path, **params)
        return status, body

    def apply(self, path: str, config: Any, manager: str, **params: Any) -> tuple[int, Any]:
        """``(status, body)`` of a server-side apply of ``config`` by field manager ``manager``."""
        status, body, _ = self.request(
            "PATCH", path, config, headers={"Content-Type": APPLY}, fieldManager=manager, **params
        )
        return status, body

    @contextmanager
    def watch(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        **params: Any,
    ) -> Iterator[Watch]:
        """An open watch of ``path`` (``watch=1`` and ``params``), closed on leaving."""
        conn = self.connect(timeout)
        try:
            conn.request(
                "GET", self.path(path, {"watch": "1", **params}), headers=self._headers(headers)
            )
            yield Watch(conn, conn.getresponse())
        finally:
            conn.close()


class Watch:
    """An open watch response read one JSON line at a time."""

    def __init__(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        self.conn = conn
        self.response = response
        self.status = response.status

    def raw_line(self) -> bytes:
        return self.response.readline()

    def next(self) -> dict[str, Any]:
        line = self.response.readline()
        assert line, "the watch ended"
        event: dict[str, Any] = json.loads(line)
        return event

    def events(self, count: int, *, skip_bookmarks: bool = True) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < count:
            event = self.next()
            if skip_bookmarks and event["type"] == "BOOKMARK":
                continue
            out.append(event)
        return out

    def ended(self) -> bool:
        return self.response.readline() == b""

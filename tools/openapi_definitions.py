"""Regenerate ``rxkube/testing/openapi-definitions.json.gz``, the schemas the test server publishes.

Why this file exists: kube-apiserver publishes the OpenAPI schema of every kind it serves
(``/openapi/v2``, ``/openapi/v3``), and kubectl needs it for ``apply -f``, ``create -f`` and
``explain``; the test server also prunes unknown fields with it. The complete upstream
spec is several megabytes; what the server needs is the definitions of the generally
available kinds (and the types they refer to), about 130 KiB compressed. They come from
the ``kubernetes-validate`` package on PyPI, which ships the v1.32 definitions as JSON
Schema; this script turns them back into the swagger 2.0 form of
``api/openapi-spec/swagger.json`` (``type`` without ``"null"``, ``#/definitions/`` refs,
no added ``enum`` on ``kind`` and ``apiVersion``, ``int-or-string``), keeps the stable
group-versions' kinds and everything they reach, and writes them sorted and compressed.

Run: ``python tools/openapi_definitions.py`` (downloads the wheel with pip).
"""

from __future__ import annotations

import glob
import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from rxkube.testing._openapi import reachable

PACKAGE = "kubernetes-validate==1.37.0"
VERSION = "v1.32.0-local"
OUT = Path(__file__).resolve().parent.parent / "rxkube" / "testing" / "openapi-definitions.json.gz"

# JSON Schema forms the package uses for these two, and the swagger forms upstream has.
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "format": "int-or-string",
        "type": "string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


def _swagger(node: Any, *, top: bool = False) -> Any:
    """A JSON Schema node of the package in upstream's swagger 2.0 form."""
    if isinstance(node, list):
        return [_swagger(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "$ref" and isinstance(value, str):
            out[key] = value.replace("#/$defs/", "#/definitions/")
        elif key == "properties" and isinstance(value, dict):
            props = {}
            for name, prop in value.items():
                prop = _swagger(prop)
                if top and name in ("kind", "apiVersion"):
                    prop.pop("enum", None)  # added by openapi2jsonschema, absent upstream
                props[name] = prop
            out[key] = props
        else:
            out[key] = _swagger(value)
    return out


def main() -> None:
    """Download the package, convert, prune and write the definitions."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, PACKAGE],
            check=True,
        )
        [wheel] = glob.glob(f"{tmp}/*.whl")
        with zipfile.ZipFile(wheel) as archive:
            name = f"kubernetes_validate/kubernetes-json-schema/{VERSION}/_definitions.json"
            defs: dict[str, Any] = json.loads(archive.read(name))["$defs"]
    converted = {
        name: _SPECIAL.get(name) or _swagger(schema, top=True) for name, schema in defs.items()
    }
    wanted = [
        name
        for name, schema in converted.items()
        if any(
            "alpha" not in gvk["version"] and "beta" not in gvk["version"]
            for gvk in schema.get("x-kubernetes-group-version-kind", [])
        )
    ]
    kept = reachable(wanted, converted)
    data = json.dumps(
        {name: converted[name] for name in kept}, sort_keys=True, separators=(",", ":")
    ).encode()
    OUT.write_bytes(gzip.compress(data, 9, mtime=0))
    print(f"{len(kept)} definitions, {len(data)} bytes, {OUT.stat().st_size} compressed -> {OUT}")


if __name__ == "__main__":
    main()

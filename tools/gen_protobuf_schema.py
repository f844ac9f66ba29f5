"""Writes ``rxkube/testing/_protobuf_schema.py``: the wire layout of the built-in kinds.

kube-apiserver reads ``application/vnd.kubernetes.protobuf`` bodies with the code that
go-to-protobuf generates from the Go types of ``k8s.io/api``. What that code needs to
turn a message into the JSON the Go struct would marshal to is in two places, and this
script reads both:

- ``generated.proto`` (each group version's, and apimachinery's): field numbers, proto
  types, repeated fields and maps;
- ``types.go``: whether a field is a pointer (a present zero value is kept; an absent one
  is left out, or ``null`` without ``omitempty``), whether its JSON tag has
  ``omitempty``, whether it is inlined (``json:",inline"``), its Go name (gogo's error
  messages use it), which structs are kinds (they inline ``TypeMeta``) and which
  messages are Go slices (``type ExtraValue []string`` marshals as a JSON array).

Only messages reachable from a kind are written. Run it against checkouts of
``k8s.io/api`` and ``k8s.io/apimachinery`` at the same tag::

    python tools/gen_protobuf_schema.py --api ../api --apimachinery ../apimachinery \\
        --tag v0.32.4 > rxkube/testing/_protobuf_schema.py
    ruff format rxkube/testing/_protobuf_schema.py
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

GROUP_VERSIONS = (
    "core/v1",
    "apps/v1",
    "batch/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "policy/v1",
    "rbac/v1",
    "networking/v1",
    "scheduling/v1",
    "coordination/v1",
    "discovery/v1",
    "storage/v1",
    "certificates/v1",
    "events/v1",
    "admissionregistration/v1",
    "node/v1",
    "flowcontrol/v1",
    "authentication/v1",
    "authorization/v1",
)
"""The group versions a v1.32 kube-apiserver serves by default that kubectl and client-go write."""

APIMACHINERY = {
    "k8s.io.apimachinery.pkg.apis.meta.v1": ("pkg/apis/meta/v1", "meta/v1"),
    "k8s.io.apimachinery.pkg.runtime": ("pkg/runtime", "runtime"),
    "k8s.io.apimachinery.pkg.runtime.schema": ("pkg/runtime/schema", "schema"),
    "k8s.io.apimachinery.pkg.util.intstr": ("pkg/util/intstr", "intstr"),
    "k8s.io.apimachinery.pkg.api.resource": ("pkg/api/resource", "resource"),
}

SPECIAL = {
    "meta/v1.Time": "@time",
    "meta/v1.MicroTime": "@microtime",
    "meta/v1.FieldsV1": "@fields",
    "resource.Quantity": "@quantity",
    "intstr.IntOrString": "@intstr",
    "runtime.RawExtension": "@raw",
}
"""Messages whose Go types marshal JSON their own way (the decoder knows each)."""

SCALARS = {"string": "s", "bytes": "b", "bool": "t", "int32": "i32", "int64": "i64"}
"""The proto scalar types the built-in kinds use; any other makes this script stop."""

_MESSAGE = re.compile(r"^message (\w+) \{$")
_FIELD = re.compile(r"^\s+(optional|repeated) ([\w.]+) (\w+) = (\d+);")
_MAP = re.compile(r"^\s+map<(\w+), ([\w.]+)> (\w+) = (\d+);")
_PACKAGE = re.compile(r"^package ([\w.]+);")
_STRUCT = re.compile(r"^type (\w+) struct \{")
_SLICE_TYPE = re.compile(r"^type (\w+) \[\]\w+$")
_GO_FIELD = re.compile(r"^\t(?:(\w+)\s+)?(\*?[\w.\[\]]+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


@dataclass
class Field:
    number: int
    json: str
    type: str
    repeated: bool = False
    pointer: bool = False
    omitempty: bool = False
    inline: bool = False
    go_name: str = ""


@dataclass
class Message:
    name: str
    fields: list[Field] = field(default_factory=list)


def _short(package: str) -> str:
    if package in APIMACHINERY:
        return APIMACHINERY[package][1]
    return package.removeprefix("k8s.io.api.").replace(".", "/")


def _qualify(type_name: str, package: str) -> str:
    if type_name in SCALARS:
        return SCALARS[type_name]
    if type_name.startswith("."):
        package, _, name = type_name[1:].rpartition(".")
        return f"{_short(package)}.{name}"
    return f"{_short(package)}.{type_name}"


def read_proto(path: Path) -> dict[str, Message]:
    """Every message of a generated.proto, by qualified short name (``core/v1.Pod``)."""
    messages: dict[str, Message] = {}
    package = ""
    current: Message | None = None
    for line in path.read_text().splitlines():
        if match := _PACKAGE.match(line):
            package = match.group(1)
        elif match := _MESSAGE.match(line):
            current = Message(f"{_short(package)}.{match.group(1)}")
            messages[current.name] = current
        elif line == "}":
            current = None
        elif current is not None and (match := _MAP.match(line)):
            key, value, name, number = match.groups()
            current.fields.append(
                Field(
                    int(number), name, f"map<{_qualify(key, package)},{_qualify(value, package)}>"
                )
            )
        elif current is not None and (match := _FIELD.match(line)):
            label, type_name, name, number = match.groups()
            current.fields.append(
                Field(int(number), name, _qualify(type_name, package), repeated=label == "repeated")
            )
    return messages


@dataclass
class GoStruct:
    kind: bool = False
    fields: dict[int, tuple[str, bool, bool, bool]] = field(default_factory=dict)
    """By field number: Go name, pointer, omitempty, inline."""


def read_types(path: Path, prefix: str) -> tuple[dict[str, GoStruct], set[str]]:
    """The structs of a types.go by qualified name, and the names of its slice types."""
    structs: dict[str, GoStruct] = {}
    slices: set[str] = set()
    current: GoStruct | None = None
    for line in path.read_text().splitlines():
        if match := _STRUCT.match(line):
            current = structs.setdefault(f"{prefix}.{match.group(1)}", GoStruct())
        elif match := _SLICE_TYPE.match(line):
            slices.add(f"{prefix}.{match.group(1)}")
        elif line == "}":
            current = None
        elif current is not None and (match := _GO_FIELD.match(line)):
            name, go_type, tag = match.groups()
            tags = dict(_TAG.findall(tag))
            json_tag = tags.get("json", "").split(",")
            if go_type.endswith("TypeMeta") and "inline" in json_tag:
                current.kind = True
            if "protobuf" not in tags:
                continue
            number = int(tags["protobuf"].split(",")[1])
            go_name = name or go_type.lstrip("*").rsplit(".", 1)[-1]
            current.fields[number] = (
                go_name,
                go_type.startswith("*"),
                "omitempty" in json_tag[1:],
                "inline" in json_tag[1:],
            )
    return structs, slices


def _group_of(register: Path) -> str:
    match = re.search(r'const GroupName = "([^"]*)"', register.read_text())
    if match is None:
        raise SystemExit(f"no GroupName in {register}")
    return match.group(1)


def _spec(fld: Field) -> str:
    flags = "".join(
        flag
        for flag, on in (
            ("r", fld.repeated),
            ("p", fld.pointer),
            ("o", fld.omitempty),
            ("i", fld.inline),
        )
        if on
    )
    spec = f"{fld.number}={fld.json}:{fld.type}:{flags}"
    default_go = fld.json[:1].upper() + fld.json[1:]
    if fld.go_name and fld.go_name != default_go:
        spec += f":{fld.go_name}"
    return spec


def main() -> None:
    """Parse the sources and print the module."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", type=Path, required=True, help="a k8s.io/api checkout")
    parser.add_argument("--apimachinery", type=Path, required=True)
    parser.add_argument("--tag", required=True, help="the tag both checkouts are at")
    args = parser.parse_args()

    messages: dict[str, Message] = {}
    structs: dict[str, GoStruct] = {}
    slices: set[str] = set()
    kinds: dict[tuple[str, str], str] = {}
    for directory, short in APIMACHINERY.values():
        root = args.apimachinery / directory
        messages.update(read_proto(root / "generated.proto"))
        if (root / "types.go").exists():
            found, found_slices = read_types(root / "types.go", short)
            structs.update(found)
            slices |= found_slices
    for name in ("Time", "MicroTime", "FieldsV1"):
        structs.setdefault(f"meta/v1.{name}", GoStruct())
    for group_version in GROUP_VERSIONS:
        root = args.api / group_version
        messages.update(read_proto(root / "generated.proto"))
        found, found_slices = read_types(root / "types.go", group_version)
        structs.update(found)
        slices |= found_slices
        group = _group_of(root / "register.go")
        version = group_version.split("/")[1]
        api_version = f"{group}/{version}" if group else version
        for qualified, struct in found.items():
            name = qualified.split(".", 1)[1]
            if struct.kind and not name.endswith("List"):
                kinds[(api_version, name)] = qualified

    wanted: dict[str, Message] = {}
    pending = sorted({*kinds.values(), "meta/v1.DeleteOptions"})
    while pending:
        name = pending.pop()
        if name in wanted or name in SPECIAL:
            continue
        message = messages.get(name)
        if message is None:
            raise SystemExit(f"no message {name} in the proto files")
        struct = structs.get(name)
        if struct is None and name not in slices:
            raise SystemExit(f"no Go type {name} in types.go")
        wanted[name] = message
        for fld in message.fields:
            if struct is not None:
                if fld.number not in struct.fields:
                    raise SystemExit(f"{name}: field {fld.number} ({fld.json}) not in types.go")
                fld.go_name, fld.pointer, fld.omitempty, fld.inline = struct.fields[fld.number]
            types = [fld.type]
            if fld.type.startswith("map<"):
                types = fld.type[4:-1].split(",")
            for type_name in types:
                if type_name in SPECIAL:
                    continue
                if "." in type_name:
                    pending.append(type_name)
        for fld in message.fields:
            for special, code in SPECIAL.items():
                fld.type = fld.type.replace(special, code)

    out = sys.stdout
    out.write(
        f'"""The protobuf wire layout of the built-in kinds (k8s.io/api {args.tag}).\n\n'
        "Generated by ``tools/gen_protobuf_schema.py`` from k8s.io/api's and\n"
        "k8s.io/apimachinery's ``generated.proto`` and ``types.go``; do not edit. Each message is\n"
        "``number=json:type:flags[:GoName]`` per field: types ``s`` string, ``b`` bytes, ``t``\n"
        "bool, ``i32``/``i64`` integers, ``@...`` a type with its own JSON form (the decoder\n"
        "knows each), ``map<K,V>``, or another message; flags ``r`` repeated, ``p`` a Go\n"
        'pointer, ``o`` ``omitempty``, ``i`` inlined in JSON.\n"""\n\n'
        "from __future__ import annotations\n\n"
        f'SOURCE = "k8s.io/api {args.tag}, k8s.io/apimachinery {args.tag}"\n\n'
        "KINDS: dict[tuple[str, str], str] = {\n"
    )
    for (api_version, kind), name in sorted(kinds.items()):
        out.write(f'    ("{api_version}", "{kind}"): "{name}",\n')
    out.write("}\n\nSLICES: frozenset[str] = frozenset(\n    {\n")
    for name in sorted(slices & set(wanted)):
        out.write(f'        "{name}",\n')
    out.write("    }\n)\n\nMESSAGES: dict[str, str] = {\n")
    for name in sorted(wanted):
        specs = " ".join(_spec(fld) for fld in wanted[name].fields)
        out.write(f'    "{name}": "{specs}",\n')
    out.write("}\n")


if __name__ == "__main__":
    main()

"""Generates ``src/custody/models.py`` from the server's OpenAPI document
(``docs/openapi.json``), so the SDK's types are the API's types and cannot drift from them
(``tests/test_models.py`` regenerates and compares).

Usage: ``python scripts/gen_models.py`` (from ``python/``; rewrites the module and formats it
with ruff).
"""

from __future__ import annotations

import json
import keyword
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OPENAPI = HERE.parents[1] / "docs" / "openapi.json"
TARGET = HERE.parent / "src" / "custody" / "models.py"

HEADER = '''"""The types of every request and answer of the custody HTTP API.

Generated from ``docs/openapi.json`` by ``python/scripts/gen_models.py``: do not edit; change
the server's API and regenerate. Answers keep fields a newer server adds (``extra="allow"``).
"""

# ruff: noqa: E501 - descriptions are the server's, line for line

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base of every API type: fields by their wire names, unknown fields kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
'''


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def py_type(schema: dict[str, Any]) -> tuple[str, bool]:
    """The Python type of a property schema, and whether it may be null."""
    if "$ref" in schema:
        return ref_name(schema["$ref"]), False
    if "oneOf" in schema:
        options = [o for o in schema["oneOf"] if o.get("type") != "null"]
        nullable = len(options) < len(schema["oneOf"])
        inner = " | ".join(py_type(o)[0] for o in options)
        return inner, nullable
    t = schema.get("type")
    nullable = False
    if isinstance(t, list):
        nullable = "null" in t
        rest = [x for x in t if x != "null"]
        t = rest[0] if len(rest) == 1 else None
    if t == "string":
        if "enum" in schema:
            return "Literal[" + ", ".join(json.dumps(v) for v in schema["enum"]) + "]", nullable
        return "str", nullable
    if t == "integer":
        return "int", nullable
    if t == "number":
        return "float", nullable
    if t == "boolean":
        return "bool", nullable
    if t == "array":
        return f"list[{py_type(schema.get('items', {}))[0]}]", nullable
    if t == "object":
        return "dict[str, Any]", nullable
    return "Any", False


def doc(text: str, indent: str) -> str:
    text = text.strip().replace('"""', "'''").replace("\\", "\\\\")
    lines = text.splitlines() or [""]
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    body = "\n".join(f"{indent}{line}".rstrip() for line in lines[1:])
    return f'{indent}"""{lines[0]}\n{body}\n{indent}"""\n'


def field_line(name: str, schema: dict[str, Any], required: bool) -> str:
    annotation, nullable = py_type(schema)
    attr = f"{name}_" if keyword.iskeyword(name) else name
    if nullable or not required:
        annotation = f"{annotation} | None"
    args: list[str] = []
    if not required:
        args.append("default=None")
    if attr != name:
        args.append(f"alias={name!r}")
    description = schema.get("description")
    if description:
        args.append(f"description={description.strip()!r}")
    if not args:
        return f"    {attr}: {annotation}\n"
    return f"    {attr}: {annotation} = Field({', '.join(args)})\n"


def object_class(
    name: str, schema: dict[str, Any], base: str, description: str | None = None
) -> str:
    out = f"\n\nclass {name}({base}):\n"
    out += doc(description or schema.get("description") or name, "    ")
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if schema.get("additionalProperties") is False:
        out += '\n    model_config = ConfigDict(extra="forbid", populate_by_name=True)\n'
    if props:
        out += "\n"
    for prop in sorted(props, key=lambda p: (p not in required, p)):
        out += field_line(prop, props[prop], prop in required)
    return out


def generate(openapi: dict[str, Any]) -> str:
    schemas: dict[str, Any] = openapi["components"]["schemas"]
    out = HEADER
    # Aliases first (enums), then classes with their bases before them.
    for name, schema in schemas.items():
        if schema.get("type") == "string" and "enum" in schema:
            out += f"\n\n{name} = {py_type(schema)[0]}\n"
            out += f"{doc(schema.get('description', name), '')}"
    done: set[str] = set()

    def emit(name: str) -> str:
        if name in done:
            return ""
        schema = schemas[name]
        text = ""
        if "allOf" in schema:
            parts = schema["allOf"]
            bases = [ref_name(p["$ref"]) for p in parts if "$ref" in p]
            for b in bases:
                text += emit(b)
            own: dict[str, Any] = {"properties": {}, "required": []}
            for p in parts:
                if "$ref" not in p:
                    own["properties"].update(p.get("properties", {}))
                    own["required"] += p.get("required", [])
            for ref in refs(own):
                if ref != name:
                    text += emit(ref)
            done.add(name)
            return text + object_class(name, own, ", ".join(bases), schema.get("description"))
        if schema.get("type") != "object":
            done.add(name)
            return ""
        for prop in schema.get("properties", {}).values():
            for ref in refs(prop):
                if ref != name:
                    text += emit(ref)
        done.add(name)
        return text + object_class(name, schema, "ApiModel")

    for name in sorted(schemas):
        out += emit(name)
    return out


def refs(schema: Any) -> list[str]:
    found: list[str] = []
    if isinstance(schema, dict):
        if "$ref" in schema:
            found.append(ref_name(schema["$ref"]))
        for v in schema.values():
            found += refs(v)
    elif isinstance(schema, list):
        for v in schema:
            found += refs(v)
    return found


def formatted(source: str) -> str:
    """``source`` as ``ruff format`` leaves it (with this project's settings)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=HERE, delete=False) as f:
        f.write(source)
        path = Path(f.name)
    try:
        subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--quiet", str(path)],
            check=True,
            cwd=HERE.parent,
        )
        return path.read_text()
    finally:
        path.unlink()


def render() -> str:
    """The module as it should be, from the committed OpenAPI document."""
    return formatted(generate(json.loads(OPENAPI.read_text())))


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")

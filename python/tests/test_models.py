"""The SDK's API types are generated from the server's OpenAPI document; regenerating must
change nothing, so the two cannot drift apart."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel

from custody import models

PYTHON = Path(__file__).resolve().parents[1]
OPENAPI = PYTHON.parent / "docs" / "openapi.json"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_models", PYTHON / "scripts" / "gen_models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_models_are_what_the_openapi_document_generates() -> None:
    generated = load_generator().render()
    committed = (PYTHON / "src" / "custody" / "models.py").read_text()
    assert generated == committed, "run `python scripts/gen_models.py` in python/ and commit"


def test_every_schema_has_a_model_with_its_fields_and_required_ones() -> None:
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    for name, schema in schemas.items():
        if schema.get("type") == "string":
            continue
        model = getattr(models, name)
        assert issubclass(model, BaseModel), name
        parts = schema.get("allOf", [schema])
        props: dict[str, object] = {}
        required: set[str] = set()
        for part in parts:
            if "$ref" in part:
                ref = schemas[part["$ref"].rsplit("/", 1)[-1]]
                props |= ref.get("properties", {})
                required |= set(ref.get("required", []))
            else:
                props |= part.get("properties", {})
                required |= set(part.get("required", []))
        wire = {f.alias or n: f for n, f in model.model_fields.items()}
        assert set(wire) == set(props), name
        assert {n for n, f in wire.items() if f.is_required()} == required, name

"""The schemas/ folder: every event schema loads, sits in its namespace's folder, registers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro.schema import load_schema

from services.registry import AvroSchema

SCHEMAS = Path(__file__).parents[2] / "schemas"
FILES = sorted(SCHEMAS.rglob("*.avsc"))


def test_the_published_events_have_schemas() -> None:
    """The change event and the saga message are there."""
    names = {path.relative_to(SCHEMAS).as_posix() for path in FILES}
    assert {"streams/ChangeEvent.avsc", "sagas/SagaMessage.avsc"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(SCHEMAS).as_posix())
def test_each_schema_loads_and_its_namespace_matches_its_folder(path: Path) -> None:
    """fastavro loads it; namespace is netscript.<folder>, name is the file name; it registers."""
    loaded = load_schema(path)
    assert isinstance(loaded, dict)
    assert loaded["type"] == "record"
    folder = path.parent.relative_to(SCHEMAS).parts
    namespace = ".".join(("netscript", *folder))
    assert loaded["name"] == f"{namespace}.{path.stem}"
    assert json.loads(path.read_text())["namespace"] == namespace
    assert AvroSchema.parse(path.read_text()).full_name == f"{namespace}.{path.stem}"
    readme = (SCHEMAS / "README.md").read_text()
    assert path.relative_to(SCHEMAS).as_posix() in readme

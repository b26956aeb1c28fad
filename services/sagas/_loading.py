"""Which sagas a process runs: ``module:attribute`` references to definitions.

``NETSCRIPT_SAGAS`` (or ``--sagas``) lists them, comma-separated; an attribute may be one
definition or an iterable of them. The default runs the seed's examples.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from services.sagas._definition import SagaDefinition
from services.sagas._errors import SagaError

DEFAULT_SAGAS = "services.sagas.examples:EXAMPLES"


def load_definitions(spec: str = DEFAULT_SAGAS) -> list[SagaDefinition[Any]]:
    """The definitions ``spec`` names (``"pkg.mod:order_saga, pkg.mod:ALL"``).

    Raises :class:`SagaError` naming the reference that does not resolve to definitions.
    """
    found: list[SagaDefinition[Any]] = []
    for reference in (part.strip() for part in spec.split(",")):
        if not reference:
            continue
        module_name, _, attribute = reference.partition(":")
        if not attribute:
            raise SagaError(f"saga reference {reference!r} needs the form module:attribute")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise SagaError(f"cannot load sagas from {reference!r}: {exc}") from exc
        items = [value] if isinstance(value, SagaDefinition) else value
        if not isinstance(items, Iterable) or not all(
                isinstance(item, SagaDefinition) for item in items):
            raise SagaError(f"{reference!r} is not a saga definition (or a list of them); "
                            "build one with define_saga(...)...build()")
        found.extend(items)
    return found

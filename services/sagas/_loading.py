"""Which sagas a process runs: ``module:attribute`` references to definitions.

``NETSCRIPT_SAGAS`` (or ``--sagas``) lists them, comma-separated; an attribute may be one
definition or an iterable of them. The default runs the seed's examples.
"""

from __future__ import annotations

from typing import Any

from services.kernel._references import load_references
from services.sagas._definition import SagaDefinition
from services.sagas._errors import SagaError

DEFAULT_SAGAS = "services.sagas.examples:EXAMPLES"


def load_definitions(spec: str = DEFAULT_SAGAS) -> list[SagaDefinition[Any]]:
    """The definitions ``spec`` names (``"pkg.mod:order_saga, pkg.mod:ALL"``).

    Raises :class:`SagaError` naming the reference that does not resolve to definitions.
    """
    return load_references(spec, SagaDefinition, what="saga", error=SagaError,
                           how="build one with define_saga(...)...build()")

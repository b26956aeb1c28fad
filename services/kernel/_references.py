"""``module:attribute`` references: how a process is told which definitions to load.

``NETSCRIPT_SAGAS`` and ``NETSCRIPT_JOBS`` (and their ``--sagas``/``--jobs`` options) list
them, comma-separated; an attribute may be one definition or an iterable of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def load_references(spec: str, kind: type[T], *, what: str, how: str,
                    error: Callable[[str], Exception]) -> list[T]:
    """The ``kind`` objects ``spec`` names (``"pkg.mod:one, pkg.mod:ALL"``), in order.

    ``what`` names them in messages (``"saga"``), ``how`` says how to build one; a reference
    that does not resolve raises ``error(message)``.
    """
    found: list[T] = []
    for reference in (part.strip() for part in spec.split(",")):
        if not reference:
            continue
        module_name, _, attribute = reference.partition(":")
        if not attribute:
            raise error(f"{what} reference {reference!r} needs the form module:attribute")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise error(f"cannot load {what}s from {reference!r}: {exc}") from exc
        items = [value] if isinstance(value, kind) else value
        if not isinstance(items, Iterable) or not all(isinstance(i, kind) for i in items):
            raise error(f"{reference!r} is not a {what} definition (or a list of them); {how}")
        found.extend(items)
    return found

"""Saga state to JSON and back, shaped by the type of the definition's initial state.

Handlers see the state as the type they declared (a dataclass, a pydantic model, a dict); the
runtime stores it as JSON. pydantic's ``TypeAdapter`` does both directions for any of these,
nested dataclasses and ``Literal`` fields included.
"""

from __future__ import annotations

from typing import Any

import pydantic


class StateCodec:
    """Encodes and decodes one definition's state."""

    __slots__ = ("_adapter",)

    def __init__(self, initial: object) -> None:
        self._adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(type(initial))

    def encode(self, state: object) -> Any:
        """``state`` as JSON-compatible data."""
        return self._adapter.dump_python(state, mode="json")

    def decode(self, data: Any) -> Any:
        """The state ``encode`` produced, as the handler's type again."""
        return self._adapter.validate_python(data)

"""``define_saga(id)``: the fluent builder, with its misuse caught at definition time.

The chain is typestate: ``define_saga`` returns a builder without state, whose ``on`` and
``compensate`` cannot be called (their parameters are ``Never``, so the type checker flags the
call, and at run time it raises saying to call ``.state()`` first); ``.state(initial)`` returns
a ``StatefulSagaBuilder[S]`` whose handlers are typed against ``S``.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, Never, NoReturn, TypeVar

import pydantic

from services.registry._errors import RegistryError
from services.sagas._definition import (
    DURABILITY_TIERS,
    ConcurrencyLimit,
    Correlation,
    DurabilityTier,
    QueryHandler,
    RetryPolicy,
    SagaDefinition,
    SagaHandler,
)
from services.sagas._errors import SagaDefinitionError, SagaReservedFeatureWarning
from services.sagas._messages import SagaMessage
from services.sagas._payloads import PayloadSchema, payload_schema

PayloadSpec = PayloadSchema | type[pydantic.BaseModel] | str

S = TypeVar("S")

SCHEDULE_TICK = "ScheduleTick"
"""The message a scheduled saga gets at each cron time (see ``_schedule``)."""

_CRON_FIELD = r"(\*|\d+|\d+-\d+)(/\d+)?(,(\*|\d+|\d+-\d+)(/\d+)?)*"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Options:
    saga_id: str
    durability: DurabilityTier = "t1"
    correlations: tuple[Correlation, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: ConcurrencyLimit | None = None
    schedule: str | None = None


def define_saga(saga_id: str) -> SagaBuilder:
    """Start defining the saga ``saga_id`` (then ``.state(...)``, handlers, ``.build()``)."""
    if not saga_id or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", saga_id):
        raise SagaDefinitionError(saga_id, "the id must be letters, digits, '.', '_' or '-'")
    return SagaBuilder(_Options(saga_id=saga_id))


class _Common:
    """Options shared by both builder states."""

    __slots__ = ("_options",)

    def __init__(self, options: _Options) -> None:
        self._options = options

    def _fail(self, problem: str) -> NoReturn:
        raise SagaDefinitionError(self._options.saga_id, problem)

    def _with_durability(self, tier: str) -> _Options:
        for known in DURABILITY_TIERS:
            if tier == known:
                return replace(self._options, durability=known)
        self._fail(f"unknown durability tier {tier!r}; use one of {', '.join(DURABILITY_TIERS)}")

    def _with_correlation(self, rule: Correlation | str) -> _Options:
        if isinstance(rule, str):
            rule = _payload_field(rule)
        elif not callable(rule):
            self._fail("a correlation rule is a payload field name or a function of the message")
        return replace(self._options, correlations=(*self._options.correlations, rule))

    def _with_concurrency(self, limit: int, key: Callable[[SagaMessage], str] | None
                          ) -> _Options:
        if limit < 1:
            self._fail(f"concurrency limit must be at least 1, not {limit}")
        return replace(self._options, concurrency=ConcurrencyLimit(limit=limit, key=key))

    def _with_schedule(self, cron: str) -> _Options:
        if not _CRON.match(cron.strip()):
            self._fail(f"invalid cron expression {cron!r}: five fields, e.g. '*/5 * * * *'")
        return replace(self._options, schedule=cron.strip())

    def _with_retry(self, max_attempts: int, backoff_ms: int) -> _Options:
        if max_attempts < 1 or backoff_ms < 0:
            self._fail("retry needs max_attempts >= 1 and backoff_ms >= 0")
        return replace(self._options, retry=RetryPolicy(max_attempts=max_attempts,
                                                        backoff_ms=backoff_ms))


class SagaBuilder(_Common):
    """A saga without state yet: configure it, then call ``.state(initial)``."""

    __slots__ = ()

    def durability(self, tier: DurabilityTier) -> SagaBuilder:
        """Where the runtime checkpoints state: ``"t1"`` (default), ``"t2"`` or ``"t3"``."""
        return SagaBuilder(self._with_durability(tier))

    def correlate(self, rule: Correlation | str) -> SagaBuilder:
        """Route messages by ``rule``: a payload field name (``"orderId"``) or a function."""
        return SagaBuilder(self._with_correlation(rule))

    def concurrency(self, *, limit: int, key: Callable[[SagaMessage], str] | None = None
                    ) -> SagaBuilder:
        """At most ``limit`` messages in flight (per ``key(message)`` when given)."""
        return SagaBuilder(self._with_concurrency(limit, key))

    def schedule(self, cron: str) -> SagaBuilder:
        """Tick the definition on a cron schedule (five fields)."""
        return SagaBuilder(self._with_schedule(cron))

    def retry(self, *, max_attempts: int = 3, backoff_ms: int = 1000) -> SagaBuilder:
        """Retry a raising handler this often before the instance fails."""
        return SagaBuilder(self._with_retry(max_attempts, backoff_ms))

    def state(self, initial: S) -> StatefulSagaBuilder[S]:
        """Declare the initial state every instance starts from (copied per instance)."""
        return StatefulSagaBuilder(self._options, initial)

    def on(self, *args: Never) -> NoReturn:
        """Not yet: handlers are typed against the state, so ``.state()`` comes first."""
        self._fail("call .state(initial) before registering a handler with .on()")

    def compensate(self, *args: Never) -> NoReturn:
        """Not yet: compensations are typed against the state, so ``.state()`` comes first."""
        self._fail("call .state(initial) before registering a compensation")

    def build(self) -> NoReturn:
        """Not yet: a saga needs a state and at least one handler."""
        self._fail("call .state(initial) and register a handler with .on() before .build()")


class StatefulSagaBuilder(_Common, Generic[S]):
    """A saga with its state type fixed: register handlers, then ``.build()``."""

    __slots__ = ("_compensations", "_handlers", "_initial", "_payloads", "_queries",
                 "_signals", "_starts")

    def __init__(self, options: _Options, initial: S, *,
                 handlers: Mapping[str, SagaHandler[S]] | None = None,
                 compensations: Mapping[str, SagaHandler[S]] | None = None,
                 signals: Mapping[str, SagaHandler[S]] | None = None,
                 queries: Mapping[str, QueryHandler] | None = None,
                 payloads: Mapping[str, PayloadSchema] | None = None,
                 starts: tuple[str, ...] = ()) -> None:
        super().__init__(options)
        self._initial = initial
        self._handlers = dict(handlers or {})
        self._compensations = dict(compensations or {})
        self._signals = dict(signals or {})
        self._queries = dict(queries or {})
        self._payloads = dict(payloads or {})
        self._starts = starts

    def _next(self, options: _Options | None = None, **changes: Any) -> StatefulSagaBuilder[S]:
        parts: dict[str, Any] = {"handlers": self._handlers, "compensations": self._compensations,
                                 "signals": self._signals, "queries": self._queries,
                                 "payloads": self._payloads, "starts": self._starts}
        parts.update(changes)
        return StatefulSagaBuilder(options or self._options, self._initial, **parts)

    def durability(self, tier: DurabilityTier) -> StatefulSagaBuilder[S]:
        """Where the runtime checkpoints state: ``"t1"`` (default), ``"t2"`` or ``"t3"``."""
        return self._next(self._with_durability(tier))

    def correlate(self, rule: Correlation | str) -> StatefulSagaBuilder[S]:
        """Route messages by ``rule``: a payload field name (``"orderId"``) or a function."""
        return self._next(self._with_correlation(rule))

    def concurrency(self, *, limit: int, key: Callable[[SagaMessage], str] | None = None
                    ) -> StatefulSagaBuilder[S]:
        """At most ``limit`` messages in flight (per ``key(message)`` when given)."""
        return self._next(self._with_concurrency(limit, key))

    def schedule(self, cron: str) -> StatefulSagaBuilder[S]:
        """Tick the definition on a cron schedule (five fields)."""
        return self._next(self._with_schedule(cron))

    def retry(self, *, max_attempts: int = 3, backoff_ms: int = 1000) -> StatefulSagaBuilder[S]:
        """Retry a raising handler this often before the instance fails."""
        return self._next(self._with_retry(max_attempts, backoff_ms))

    def on(self, message_type: str, handler: SagaHandler[S], *,
           payload: PayloadSpec | None = None, starts: bool = False) -> StatefulSagaBuilder[S]:
        """Handle ``message_type``: ``handler(saga, event, context)`` returns effects.

        ``payload`` is the payload's schema (an Avro file under ``schemas/``, a pydantic model);
        the sagas API refuses a published payload that does not fit it. ``starts=True`` lets
        this type start an instance; when no handler says so, the first ``.on()`` type does,
        and any other message arriving before its instance exists is parked until it starts.
        """
        self._check(message_type, handler, self._handlers, "handler")
        return self._next(handlers={**self._handlers, message_type: handler},
                          payloads=self._with_payload(message_type, payload),
                          starts=(*self._starts, message_type) if starts else self._starts)

    def compensate(self, message_type: str, handler: SagaHandler[S], *,
                   payload: PayloadSpec | None = None) -> StatefulSagaBuilder[S]:
        """Undo ``message_type``'s step when a handler returns ``saga_compensate(...)``."""
        self._check(message_type, handler, self._compensations, "compensation")
        return self._next(compensations={**self._compensations, message_type: handler},
                          payloads=self._with_payload(message_type, payload))

    def _with_payload(self, message_type: str, spec: PayloadSpec | None
                      ) -> dict[str, PayloadSchema]:
        if spec is None:
            return self._payloads
        try:
            schema = payload_schema(spec)
        except (OSError, ValueError, RegistryError) as exc:
            self._fail(f"the payload schema of {message_type!r} cannot be loaded: {exc}")
        known = self._payloads.get(message_type)
        if known is not None and known != schema:
            self._fail(f"{message_type!r} is declared with two different payload schemas")
        return {**self._payloads, message_type: schema}

    def on_signal(self, signal: str, handler: SagaHandler[S]) -> StatefulSagaBuilder[S]:
        """Reserved (as in the seed): register a handler for an out-of-band signal.

        The runtime does not dispatch signals yet: the handler is stored on the definition
        but never called, and a :class:`SagaReservedFeatureWarning` says so.
        """
        self._check(signal, handler, self._signals, "signal handler")
        self._reserved(f".on_signal({signal!r})", "signals")
        return self._next(signals={**self._signals, signal: handler})

    def on_query(self, query: str, handler: QueryHandler) -> StatefulSagaBuilder[S]:
        """Reserved (as in the seed): register a read-only query ``handler(state, args)``.

        The runtime does not dispatch queries yet: the handler is stored on the definition
        but never called, and a :class:`SagaReservedFeatureWarning` says so.
        """
        if not query or not callable(handler):
            self._fail("on_query needs a name and a function")
        if query in self._queries:
            self._fail(f"query {query!r} is registered twice")
        self._reserved(f".on_query({query!r})", "queries")
        return self._next(queries={**self._queries, query: handler})

    def _reserved(self, call: str, what: str) -> None:
        # stacklevel 3: the warning points at the saga definition, not at this builder.
        warnings.warn(
            f"saga {self._options.saga_id!r}: {call} is reserved — the runtime does not "
            f"dispatch {what} yet, so this handler is stored on the definition but never "
            "called", SagaReservedFeatureWarning, stacklevel=3)

    def build(self) -> SagaDefinition[S]:
        """Freeze the saga; it needs at least one ``.on()`` handler."""
        if not self._handlers:
            self._fail("register at least one handler with .on() before .build()")
        for message_type in self._compensations:
            if message_type not in self._handlers:
                self._fail(f"compensation for {message_type!r} has no .on({message_type!r}) "
                           "handler that could request it")
        options = self._options
        starts = frozenset(self._starts or (next(iter(self._handlers)),))
        if options.schedule is not None:
            if SCHEDULE_TICK not in self._handlers:
                self._fail(f"a scheduled saga handles each cron tick: add "
                           f".on({SCHEDULE_TICK!r}, handler)")
            starts |= {SCHEDULE_TICK}
        return SagaDefinition(
            id=options.saga_id, durability=options.durability,
            initial_state=copy.deepcopy(self._initial),
            handlers=MappingProxyType(dict(self._handlers)),
            compensations=MappingProxyType(dict(self._compensations)),
            correlations=options.correlations, retry=options.retry,
            concurrency=options.concurrency, schedule=options.schedule,
            signals=MappingProxyType(dict(self._signals)),
            queries=MappingProxyType(dict(self._queries)),
            start_types=starts, payloads=MappingProxyType(dict(self._payloads)),
        )

    def _check(self, name: str, handler: object, registered: Mapping[str, object],
               what: str) -> None:
        if not name:
            self._fail(f"a {what} needs a non-empty message type")
        if not callable(handler):
            self._fail(f"the {what} for {name!r} is not callable")
        if name in registered:
            self._fail(f"{what} for {name!r} is registered twice")


def _payload_field(name: str) -> Correlation:
    def rule(message: SagaMessage) -> str | None:
        value = message.payload.get(name)
        return None if value is None or value == "" else str(value)

    rule.__name__ = f"payload[{name!r}]"
    return rule

"""Which store a saga runtime writes to: ``kv`` (the log's compacted changelog) or
``postgres``. The choice is explicit — the service refuses to start without one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from services.sagas._errors import SagaStoreConfigError

Backend = Literal["kv", "postgres"]
_ALIASES: dict[str, Backend] = {"kv": "kv", "postgres": "postgres", "prisma": "postgres"}


def resolve_saga_store_backend(env: Mapping[str, str],
                               app_config: Mapping[str, Any] | None = None) -> Backend:
    """``NETSCRIPT_SAGA_STORE``, else the app config's ``sagas.store.backend``.

    ``prisma`` (the seed's name) is accepted for ``postgres``. Raises
    :class:`SagaStoreConfigError` when neither is set or the value is unknown.
    """
    value = env.get("NETSCRIPT_SAGA_STORE") or None
    origin = "NETSCRIPT_SAGA_STORE"
    if value is None and app_config is not None:
        store = (app_config.get("sagas") or {}).get("store") or {}
        value = store.get("backend") if isinstance(store, Mapping) else None
        origin = "sagas.store.backend"
    if not value:
        raise SagaStoreConfigError(
            "no saga store backend chosen: set NETSCRIPT_SAGA_STORE=kv|postgres (or "
            "sagas.store.backend in the app config); there is no default, so durable state "
            "never lands somewhere by accident")
    backend = _ALIASES.get(str(value).strip().lower())
    if backend is None:
        raise SagaStoreConfigError(f"{origin}={value!r} is not a saga store backend; use kv or "
                                   "postgres (prisma is accepted as postgres)")
    return backend

"""Stateful stream processors: faust-streaming apps wired to NetScript's log.

``processor_app`` builds a ``faust.App`` with NetScript's defaults and with fixes for faust
weaknesses that would otherwise reach users (see ``_faust_fixes``). Every capability's
background processor (sagas, jobs, streams) is built with it.
"""

from services.processing._app import ProcessorApp, processor_app
from services.processing._emit import ChangelogTable, emit, event_transactional_id
from services.processing._faust_fixes import SOURCE_HEADER, source_headers
from services.processing._replay import ReplayGuard

__all__ = [
    "SOURCE_HEADER",
    "ChangelogTable",
    "ProcessorApp",
    "ReplayGuard",
    "emit",
    "event_transactional_id",
    "processor_app",
    "source_headers",
]

"""The faust App NetScript's processors are built on."""

from __future__ import annotations

from typing import Any

import faust

from services.processing._faust_fixes import Transport


class ProcessorApp(faust.App):
    """A ``faust.App`` whose consumer transport carries NetScript's fixes."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Transport:
        return Transport(self.conf.broker_producer, self)


def processor_app(
    app_id: str,
    *,
    bootstrap_servers: str,
    guarantee: str = "exactly_once",
    **settings: Any,
) -> ProcessorApp:
    """A processor app on ``bootstrap_servers`` with NetScript's defaults.

    ``guarantee`` is faust's ``processing_guarantee`` (``"exactly_once"`` or
    ``"at_least_once"``); ``settings`` are passed to ``faust.App`` unchanged.
    """
    defaults: dict[str, Any] = {
        "broker": f"kafka://{bootstrap_servers}",
        "processing_guarantee": guarantee,
        "topic_replication_factor": 1,
        "web_enabled": False,
    }
    return ProcessorApp(app_id, **{**defaults, **settings})

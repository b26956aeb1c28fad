"""Where the streams server is, and how to authenticate to it (read from the environment).

``get_streams_url`` prefers ``DURABLE_STREAMS_URL`` and falls back to the topology's
``services__streams__http__0``; ``build_stream_url`` joins a stream path onto it under the
protocol's stream root (``/v1/stream``) unless the base already points there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from services.streams._errors import StreamsNotConfiguredError

STREAM_ROOT = "/v1/stream"


def get_streams_url(environ: Mapping[str, str] | None = None) -> str:
    """The streams server's base URL, without a trailing slash."""
    env = os.environ if environ is None else environ
    url = env.get("DURABLE_STREAMS_URL") or env.get("services__streams__http__0")
    if not url:
        raise StreamsNotConfiguredError()
    return url.rstrip("/")


def get_streams_auth(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <secret>"}`` from STREAMS_SECRET / DURABLE_STREAMS_SECRET."""
    env = os.environ if environ is None else environ
    secret = env.get("STREAMS_SECRET") or env.get("DURABLE_STREAMS_SECRET")
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def build_stream_url(path: str, base_url: str | None = None) -> str:
    """The URL of the stream at ``path`` (``/workers/executions``) on ``base_url``."""
    base = (base_url if base_url is not None else get_streams_url()).rstrip("/")
    if not base.endswith(STREAM_ROOT):
        base += STREAM_ROOT
    return base + "/" + path.lstrip("/")

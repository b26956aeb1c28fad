"""Offset tokens: ``<epoch>_<position>``, two zero-padded 16-digit decimals.

Tokens sort lexicographically in stream order and never contain the characters the protocol
reserves (``,&=?/``). ``position`` is the stream offset (a log offset, shifted by a fork's
base); ``epoch`` is reserved and always ``0000000000000000``, so the first position of every
stream is the protocol's well-known zero offset ``0000000000000000_0000000000000000``.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^(\d{16})_(\d{16})$")

BEGINNING = "-1"
NOW = "now"


def format_offset(position: int) -> str:
    """The token of stream offset ``position``."""
    return f"{0:016d}_{position:016d}"


def parse_offset(token: str) -> int | None:
    """The stream offset a token names; ``None`` when it is not one of ours."""
    match = _TOKEN.match(token)
    if match is None or int(match[1]) != 0:
        return None
    return int(match[2])

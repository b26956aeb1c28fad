"""The root of every error NetScript raises.

Each capability roots its own tree here, so ``except NetScriptError`` catches anything the
framework raises on purpose, while library errors (aiokafka, asyncpg) are translated at the
boundary with ``raise ... from exc`` and never leak.
"""


class NetScriptError(Exception):
    """Base class of all NetScript errors."""

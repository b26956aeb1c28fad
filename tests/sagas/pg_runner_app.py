"""The ``postgres`` saga runtime as a process of its own, for the ``kill -9`` test.

``python -m tests.sagas.pg_runner_app`` with ``DATABASE_URL`` (its ``search_path`` names the
test's schema), ``KAFKA_BOOTSTRAP_SERVERS`` and ``NETSCRIPT_SAGAS_GROUP``; SIGTERM stops it
gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import asyncpg

from services.sagas._engine import SagaEngine
from services.sagas._postgres_runner import run_postgres_runtime
from services.sagas.examples import EXAMPLES


async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=4) as pool:
        await run_postgres_runtime(
            SagaEngine(EXAMPLES), pool=pool,
            bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            group_id=os.environ.get("NETSCRIPT_SAGAS_GROUP") or None, stop=stop,
            partitions=int(os.environ.get("NETSCRIPT_SAGAS_PARTITIONS", "2")),
            # A killed member holds its partitions until its session expires: keep it short.
            session_timeout_ms=1500, heartbeat_interval_ms=300)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())

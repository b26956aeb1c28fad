"""Small network helpers shared by the CLI's supervisor and the test helpers."""

from __future__ import annotations

import socket
import time


def wait_until_listening(host: str, port: int, *, timeout: float) -> bool:
    """Poll until ``host:port`` accepts connections; ``False`` once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

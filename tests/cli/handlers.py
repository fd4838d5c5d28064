"""Handlers the worker tests give `lifecycle worker --handler`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lifecycle.store import OutboxMessage


def _out() -> Path:
    return Path(os.environ["LIFECYCLE_TEST_OUT"])


def record(message: OutboxMessage) -> None:
    with _out().open("a") as file:
        file.write(json.dumps(message.to_dict()) + "\n")


async def record_async(message: OutboxMessage) -> None:
    record(message)

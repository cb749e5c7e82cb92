"""What every command family uses: the settings, JSON output."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hookyard.config import Settings


def load_settings() -> Settings:
    return Settings()


def print_json(value: Any) -> None:
    print(json.dumps(value, default=_json_default, indent=2))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)

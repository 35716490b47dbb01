"""Streamed events' `properties` (a JSON object as text, as PutEvents / PutItems / PutUsers send it) as
schema fields: Personalize matches camelCase keys to UPPER_SNAKE field names."""

from __future__ import annotations

import json
import re


def field_name(key: str) -> str:
    """Personalize's property key -> schema field name: camelCase keys match UPPER_SNAKE fields
    (`numberOfRatings` -> `NUMBER_OF_RATINGS`, `device` -> `DEVICE`); UPPER_SNAKE keys are kept."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).upper()


def property_fields(properties: str | None) -> dict[str, str]:
    """An event's `properties` JSON as {FIELD_NAME: value as text}; not a JSON object -> {}."""
    if not properties:
        return {}
    try:
        obj = json.loads(properties)
    except ValueError:
        return {}
    if not isinstance(obj, dict):
        return {}
    return {field_name(str(k)): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items() if v is not None}

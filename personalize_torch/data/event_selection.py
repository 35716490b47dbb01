"""Choose the interactions a solution trains on, as Personalize's solution config does.

`event_type`: keep only events of that EVENT_TYPE (Personalize's `eventType`).
`event_value_threshold`: keep only events whose EVENT_VALUE is >= the threshold
(Personalize's `eventValueThreshold`, which needs `eventType` to be set there; here it may be used alone).
"""

from __future__ import annotations

import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.errors import InputError


def select_events(interactions: pd.DataFrame, event_type: str | None = None,
                  event_value_threshold: float | None = None, source: str = "interactions") -> pd.DataFrame:
    keep = pd.Series(True, index=interactions.index)
    if event_type is not None:
        if C.EVENT_TYPE not in interactions.columns:
            raise InputError(f"eventType={event_type!r} was given but the interactions have no EVENT_TYPE column",
                             file=source, column=C.EVENT_TYPE)
        keep &= (interactions[C.EVENT_TYPE] == event_type).fillna(False).astype(bool)
        if not keep.any():
            types = sorted(interactions[C.EVENT_TYPE].dropna().unique().tolist())[:20]
            raise InputError(f"no events of type {event_type!r}; the types present are {types}",
                             file=source, column=C.EVENT_TYPE)
    if event_value_threshold is not None:
        if C.EVENT_VALUE not in interactions.columns:
            raise InputError("eventValueThreshold was given but the interactions have no EVENT_VALUE column",
                             file=source, column=C.EVENT_VALUE)
        keep &= (interactions[C.EVENT_VALUE] >= float(event_value_threshold)).fillna(False).astype(bool)
    return interactions[keep].reset_index(drop=True)

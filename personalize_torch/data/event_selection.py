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
                  event_value_threshold: float | None = None, source: str = "interactions",
                  event_parameters: list[dict] | None = None) -> pd.DataFrame:
    keep = pd.Series(True, index=interactions.index)
    if event_parameters:
        keep &= _listed_events(interactions, event_parameters, source)
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


def _listed_events(interactions: pd.DataFrame, event_parameters: list[dict], source: str) -> pd.Series:
    """Personalize's eventsConfig.eventParametersList: events of the listed types, each type with its own
    eventValueThreshold (items {"event_type": ..., "event_value_threshold": number or None})."""
    if C.EVENT_TYPE not in interactions.columns:
        raise InputError("eventsConfig lists event types but the interactions have no EVENT_TYPE column",
                         file=source, column=C.EVENT_TYPE)
    types = interactions[C.EVENT_TYPE].astype("string")
    keep = pd.Series(False, index=interactions.index)
    for p in event_parameters:
        of_type = (types == str(p["event_type"])).fillna(False).astype(bool)
        if not of_type.any():
            present = sorted(types.dropna().unique().tolist())[:20]
            raise InputError(f"eventsConfig: no events of type {p['event_type']!r}; the types present are {present}",
                             file=source, column=C.EVENT_TYPE)
        threshold = p.get("event_value_threshold")
        if threshold is not None:
            if C.EVENT_VALUE not in interactions.columns:
                raise InputError(f"eventsConfig gives {p['event_type']!r} an eventValueThreshold but the "
                                 "interactions have no EVENT_VALUE column", file=source, column=C.EVENT_VALUE)
            of_type &= (interactions[C.EVENT_VALUE] >= float(threshold)).fillna(False).astype(bool)
        keep |= of_type
    return keep

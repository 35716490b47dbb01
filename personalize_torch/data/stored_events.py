"""Training on what the server stored: PutEvents, PutItems and PutUsers rows added to a dataset group.

Personalize trains a new solution version on the bulk imports plus the events streamed since. Here,
`data.events_db=<the server's events.sqlite>` does the same: `with_stored_events` reads the event store
(the SQLite file `personalize_torch.serving.events.event_store` writes; opened read-only, so a running server
is not disturbed) and returns the group with
- one Interactions row per stored event that has an item: USER_ID (for an anonymous event, the user who
  later used its session, else the sessionId itself, as the server treats it), ITEM_ID, TIMESTAMP
  (sentAt), and EVENT_TYPE, EVENT_VALUE, IMPRESSION (`a|b|c`) and contextual columns (from `properties`,
  camelCase keys matched to schema fields) where the Interactions dataset has those columns;
- PutItems / PutUsers rows upserted into Items / Users (the newest properties of an id win; only
  columns the dataset has are kept; new ids are added).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.block_conversion import concat_typed
from personalize_torch.data.dataset_group import DatasetGroup
from personalize_torch.data.event_properties import property_fields
from personalize_torch.errors import InputError

_EVENTS = ("SELECT user_id, session_id, event_type, event_value, item_id, sent_at, impression, properties "
           "FROM events WHERE item_id IS NOT NULL ORDER BY seq")


def _connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise InputError("events database not found", file=str(path), column="data.events_db")
    try:
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        con.execute("SELECT 1 FROM events LIMIT 1")
        return con
    except sqlite3.Error as err:
        raise InputError(f"not an event store written by serve.py ({err})", file=str(path),
                         column="data.events_db") from None


def stored_interactions(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """The store's events as Interactions rows with exactly `columns` (the Interactions dataset's)."""
    with _connect(path) as con:
        ev = pd.read_sql_query(_EVENTS, con)
    known = ev.dropna(subset=["user_id"]).drop_duplicates("session_id", keep="last")
    owner = ev["session_id"].map(known.set_index("session_id")["user_id"])
    out = pd.DataFrame({C.USER_ID: ev["user_id"].fillna(owner).fillna(ev["session_id"]).astype(str),
                        C.ITEM_ID: ev["item_id"].astype(str),
                        C.TIMESTAMP: ev["sent_at"].astype("int64")})
    if C.EVENT_TYPE in columns:
        out[C.EVENT_TYPE] = ev["event_type"]
    if C.EVENT_VALUE in columns:
        out[C.EVENT_VALUE] = ev["event_value"]
    if C.IMPRESSION in columns:
        out[C.IMPRESSION] = ev["impression"].map(lambda j: "|".join(json.loads(j)) if isinstance(j, str) else None)
    extra = [c for c in columns if c not in out.columns]
    if extra:
        props = pd.DataFrame([property_fields(p if isinstance(p, str) else None) for p in ev["properties"]],
                             index=ev.index)
        for c in extra:
            out[c] = props[c] if c in props.columns else None
    return out[[c for c in columns if c in out.columns]]


def _upsert(frame: pd.DataFrame | None, rows: pd.DataFrame, id_column: str) -> pd.DataFrame | None:
    """`frame` with `rows` (id + properties JSON) applied: known ids updated field by field, new ids added."""
    if frame is None or not len(rows):
        return frame
    rows = rows.drop_duplicates("id", keep="last")
    props = pd.DataFrame([property_fields(p if isinstance(p, str) else None) for p in rows["properties"]])
    props[id_column] = rows["id"].astype(str).to_numpy()
    props = props[[c for c in frame.columns if c in props.columns]].set_index(id_column)
    merged = frame.set_index(id_column)
    for c in props.columns:
        if c in merged.columns and pd.api.types.is_numeric_dtype(merged[c]):
            props[c] = pd.to_numeric(props[c], errors="coerce")
    new = props.index.difference(merged.index)
    merged = pd.concat([merged, pd.DataFrame(index=new, columns=merged.columns)])
    merged.update(props)
    return merged.rename_axis(id_column).reset_index()


def with_stored_events(group: DatasetGroup, path: str | Path) -> DatasetGroup:
    """`group` plus the event store's events, items and users (see the module docstring)."""
    inter = group.interactions
    events = stored_interactions(path, list(inter.columns))
    interactions = concat_typed([inter, events.astype({C.TIMESTAMP: inter[C.TIMESTAMP].dtype})])
    with _connect(path) as con:
        items = pd.read_sql_query("SELECT item_id AS id, properties FROM items ORDER BY updated_at", con)
        users = pd.read_sql_query("SELECT user_id AS id, properties FROM users ORDER BY updated_at", con)
    return DatasetGroup(interactions, _upsert(group.items, items, C.ITEM_ID), _upsert(group.users, users, C.USER_ID),
                        group.schemas, group.name, f"{group.source} + {path}")

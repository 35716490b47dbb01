"""Campaign auto-update: new items from PutItems become recommendable without retraining.

Personalize refreshes a User-Personalization campaign about every 2 hours in UPDATE mode. Here a campaign
with `auto_update_minutes` set does the same: every that many minutes the server looks for PutItems rows
(in its event store) for items the served solution version does not know, or whose properties changed
since it was written; if there are any, it writes them as an Items CSV in the solution's Items schema,
runs UPDATE (`personalize_torch.update`: existing items keep their weights, new ones are placed by their
metadata) into a new solution version directory under `update_root`, loads and warms it, and swaps it
into the campaign the same way a deploy does (no failed requests).

Each period runs once: in one server process, or, when processes share a deployment log (workers, hosts
on one PostgreSQL database), in the one that claims the period first (`DeploymentLog.claim_auto_update`);
the next period starts when that update ends.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.event_properties import property_fields
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.inference.predictor import Predictor
from personalize_torch.update import update_solution_version

log = logging.getLogger(__name__)


class AutoUpdateSchedule(Protocol):
    def claim_auto_update(self, campaign: str, every_seconds: float) -> bool:
        """True when the caller should auto-update `campaign` now (no one else may until it finishes)."""

    def finish_auto_update(self, campaign: str, every_seconds: float) -> None:
        """The claimed auto-update ended: the next period starts now."""


class LocalAutoUpdateSchedule:
    """The periods of one server process's auto-updates (no deployment log shared with others): a
    campaign's first period ends `every_seconds` after its first claim."""

    def __init__(self) -> None:
        self._next_due: dict[str, float] = {}

    def claim_auto_update(self, campaign: str, every_seconds: float) -> bool:
        now = time.monotonic()
        if now < self._next_due.setdefault(campaign, now + every_seconds):
            return False
        self._next_due[campaign] = float("inf")   # until finish_auto_update
        return True

    def finish_auto_update(self, campaign: str, every_seconds: float) -> None:
        self._next_due[campaign] = time.monotonic() + every_seconds


def pending_items(predictor: Predictor, store: EventStore) -> pd.DataFrame:
    """PutItems rows that are new to the solution or changed since it was written, as Items rows with the
    solution's Items columns (empty when there are none)."""
    sol = predictor.solution
    columns = list(sol.items.columns) if sol.items is not None else [C.ITEM_ID]
    written = float(sol.info.get("created_epoch") or sol.path.joinpath("solution.json").stat().st_mtime)
    known = set(sol.item_vocab.ids)
    rows = [{C.ITEM_ID: r.id, **property_fields(r.properties)} for r in store.items()
            if r.id not in known or r.updated_at > written]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    current = sol.items.set_index(C.ITEM_ID) if sol.items is not None else pd.DataFrame()
    out = frame.reindex(columns=columns)
    for c in columns:  # a changed item keeps the fields PutItems did not send
        if c != C.ITEM_ID and c in current.columns:
            out[c] = out[c].fillna(out[C.ITEM_ID].map(current[c]))
    return out.drop_duplicates(C.ITEM_ID, keep="last")


def update_campaign(predictor: Predictor, store: EventStore, update_root: str | Path) -> Predictor | None:
    """A warmed-up predictor of the UPDATEd solution version, or None when nothing is pending."""
    items = pending_items(predictor, store)
    if not len(items):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**9:09d}"
    out = Path(update_root) / f"{predictor.solution.path.name}-update-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    csv = out.with_suffix(".items.csv")
    items.to_csv(csv, index=False)
    try:
        path = update_solution_version(predictor.solution.path, csv, out / "solution")
    finally:
        csv.unlink(missing_ok=True)
    updated = Predictor.load_warm(path, predictor.device.type, cache_user_states=predictor.user_states is not None,
                                  first_pass=predictor.first_pass)
    log.info("auto-update: %d new or changed items -> %s", len(items), path)
    return updated

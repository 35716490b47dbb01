"""Which solution version each campaign serves, shared by the server's worker processes and by every
serving host on one PostgreSQL events database; and when each campaign's next auto-update is due.

Every process (`workers > 1`, or several hosts) has its own copy of each campaign's model, and a deploy
(`PUT /campaigns/{name}`) or an auto-update reaches only the process that did it. That process records it
here, a table in the events database; every process polls the table about once a second and loads what
it has not applied yet, in the background, swapping it in the way a deploy does (no failed requests).
Between the first process and the last, for about a second (plus the time to load the model), different
processes may answer from the old and the new solution version. A deploy records the solution version's
path: every host must see it at that path (shared storage).

The table also outlives the server: the campaigns given on the command line are recorded at start
(they win over what an earlier run deployed), and later deploys are recorded as they happen.

Auto-updates run once per period across all processes: `claim_auto_update` hands each period of a
campaign to the one process that claims it first (a row per campaign with its next due time, changed
in one serialized write), which holds it while it runs the update (`finish_auto_update` starts the next
period; a process that went away mid-update holds it at most `AUTO_UPDATE_LEASE_SECONDS`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

from personalize_torch.serving.events.database import Database
from personalize_torch.serving.events.store_url import open_database

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_deployments (
    version   INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign  TEXT NOT NULL,
    solution  TEXT NOT NULL,
    settings  TEXT NOT NULL,   -- JSON: the campaign's CampaignSettings fields
    deployed  REAL NOT NULL    -- unix time
);
CREATE TABLE IF NOT EXISTS campaign_auto_updates (
    campaign  TEXT PRIMARY KEY,
    next_due  REAL NOT NULL    -- unix time from which the next auto-update may be claimed
);
"""
_POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_deployments (
    version   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign  TEXT NOT NULL,
    solution  TEXT NOT NULL,
    settings  TEXT NOT NULL,
    deployed  DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_auto_updates (
    campaign  TEXT PRIMARY KEY,
    next_due  DOUBLE PRECISION NOT NULL
);
"""
_SCHEMAS = {"sqlite": _SQLITE_SCHEMA, "postgresql": _POSTGRES_SCHEMA}
AUTO_UPDATE_LEASE_SECONDS = 3600.0   # the longest a claimed auto-update keeps others from claiming the campaign


@dataclass(frozen=True)
class Deployment:
    version: int
    campaign: str
    solution: str
    settings: dict


class DeploymentLog:
    """`DeploymentLog("events.sqlite")` or `DeploymentLog("postgresql://...")` (see `store_url`): record
    deploys, read the ones after a version, claim auto-updates."""

    def __init__(self, location: str | Path, timeout: float = 30.0):
        self._db: Database = open_database(location, timeout=timeout)
        if self._db.in_memory:
            self._db.close()
            raise ValueError("a deployment log shared by processes needs a database file, not :memory:")
        try:
            self._db.apply_schema(_SCHEMAS[self._db.dialect])
        except BaseException:
            self._db.close()
            raise

    def record(self, campaign: str, solution: str | Path, settings) -> int:
        """Append a deploy (committed before it returns); its version. `settings`: the campaign's settings
        (a dataclass such as serving.campaigns.CampaignSettings, or a dict)."""
        settings = asdict(settings) if is_dataclass(settings) else dict(settings)
        with self._db.write() as tx:
            version = tx.execute(
                "INSERT INTO campaign_deployments (campaign, solution, settings, deployed) VALUES (?, ?, ?, ?) "
                "RETURNING version", (campaign, str(solution), json.dumps(settings, sort_keys=True), time.time()))[0][0]
        return int(version)

    def latest_version(self) -> int:
        return int(self._db.query("SELECT COALESCE(MAX(version), 0) FROM campaign_deployments")[0][0])

    def after(self, version: int) -> list[Deployment]:
        """Each campaign's newest deploy with a version above `version`, oldest first."""
        rows = self._db.query(
            "SELECT version, campaign, solution, settings FROM campaign_deployments WHERE version IN "
            "(SELECT MAX(version) FROM campaign_deployments WHERE version > ? GROUP BY campaign) ORDER BY version",
            (int(version),))
        return [Deployment(int(v), c, s, json.loads(st)) for v, c, s, st in rows]

    def claim_auto_update(self, campaign: str, every_seconds: float) -> bool:
        """Whether this caller runs `campaign`'s auto-update now: True for the first caller once the period
        is due, False for everyone else until the claimant calls `finish_auto_update` (or
        `AUTO_UPDATE_LEASE_SECONDS` pass). A campaign's first period starts at its first claim."""
        now = time.time()
        with self._db.write() as tx:
            tx.execute("INSERT INTO campaign_auto_updates (campaign, next_due) VALUES (?, ?) "
                       "ON CONFLICT (campaign) DO NOTHING", (campaign, now + every_seconds))
            claimed = tx.execute("UPDATE campaign_auto_updates SET next_due = ? WHERE campaign = ? AND next_due <= ? "
                                 "RETURNING campaign",
                                 (now + max(every_seconds, AUTO_UPDATE_LEASE_SECONDS), campaign, now))
        return bool(claimed)

    def finish_auto_update(self, campaign: str, every_seconds: float) -> None:
        """The claimed auto-update of `campaign` ended (done, nothing to do, or failed): the next period
        starts now."""
        with self._db.write() as tx:
            tx.execute("UPDATE campaign_auto_updates SET next_due = ? WHERE campaign = ?",
                       (time.time() + every_seconds, campaign))

    def close(self) -> None:
        self._db.close()

"""Which solution version each campaign serves, shared by the server's worker processes.

With `workers > 1` every process has its own copy of each campaign's model, and a deploy
(`PUT /campaigns/{name}`) or an auto-update reaches only the process that did it. That process records it
here, a table in the events database (SQLite, WAL: readers never wait for the writer); every process
polls the table about once a second and loads what it has not applied yet, in the background, swapping
it in the way a deploy does (no failed requests). Between the first process and the last, for about a
second, different processes may answer from the old and the new solution version.

The table also outlives the server: the campaigns given on the command line are recorded at start
(they win over what an earlier run deployed), and later deploys are recorded as they happen.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_deployments (
    version   INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign  TEXT NOT NULL,
    solution  TEXT NOT NULL,
    settings  TEXT NOT NULL,   -- JSON: the campaign's CampaignSettings fields
    deployed  REAL NOT NULL    -- unix time
);
"""


@dataclass(frozen=True)
class Deployment:
    version: int
    campaign: str
    solution: str
    settings: dict


class DeploymentLog:
    """`DeploymentLog("events.sqlite")`: record deploys, read the ones after a version."""

    def __init__(self, path: str | Path, timeout: float = 30.0):
        self.path = str(path)
        if self.path == ":memory:":
            raise ValueError("a deployment log shared by processes needs a database file, not :memory:")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def record(self, campaign: str, solution: str | Path, settings) -> int:
        """Append a deploy (committed before it returns); its version. `settings`: the campaign's settings
        (a dataclass such as serving.campaigns.CampaignSettings, or a dict)."""
        settings = asdict(settings) if is_dataclass(settings) else dict(settings)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO campaign_deployments (campaign, solution, settings, deployed) VALUES (?, ?, ?, ?)",
                (campaign, str(solution), json.dumps(settings, sort_keys=True), time.time()))
            return int(cur.lastrowid)

    def latest_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM campaign_deployments").fetchone()[0])

    def after(self, version: int) -> list[Deployment]:
        """Each campaign's newest deploy with a version above `version`, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT MAX(version), campaign, solution, settings FROM campaign_deployments WHERE version > ? "
                "GROUP BY campaign ORDER BY MAX(version)", (int(version),)).fetchall()
        # SQLite returns the bare columns of the row holding MAX(version) in a GROUP BY.
        return [Deployment(int(v), c, s, json.loads(st)) for v, c, s, st in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

"""The campaigns a server serves, and the one place that changes them.

A campaign is a name with what it serves: a warmed-up predictor, its settings (campaignConfig) and the
deployment-log version they came from, kept together in one immutable `Campaign`. `Campaigns` holds them
by name. Requests read a campaign with one dict lookup and no lock, so a request always sees a complete
campaign; the changes (`deploy`, `auto_update`, `apply_deployments` for deploys recorded by other worker
processes) load the new predictor first, then swap the new `Campaign` in with one dict assignment under a
lock, so requests already running finish on the old one. The two loops at the end run the background
changes from the server's event loop; their blocking work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from personalize_torch.errors import InputError
from personalize_torch.serving.events.auto_update import AutoUpdateSchedule, LocalAutoUpdateSchedule, update_campaign
from personalize_torch.serving.events.deployment_log import DeploymentLog
from personalize_torch.serving.events.event_store import EventStore
from personalize_torch.serving.inference.exploration import check_exploration_settings
from personalize_torch.serving.inference.predictor import Predictor

log = logging.getLogger(__name__)

CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")   # never "." or ".."


@dataclass
class CampaignSettings:
    """A campaign's campaignConfig: itemExplorationConfig's explorationWeight and explorationItemAgeCutOff;
    and whether lists that a filter leaves short are back-filled with popular items ("Popular item")."""

    exploration_weight: float = 0.0
    exploration_item_age_cut_off: float = 30.0
    backfill_popular: bool = False
    auto_update_minutes: float | None = None  # UPDATE with new PutItems items this often (Personalize: ~120)

    def __post_init__(self) -> None:
        check_exploration_settings(self.exploration_weight, self.exploration_item_age_cut_off)


@dataclass(frozen=True)
class Campaign:
    """What one campaign serves; replaced whole, never changed."""

    name: str
    predictor: Predictor
    settings: CampaignSettings
    version: int   # the deployment-log version it came from (the startup campaigns: `deployed_version`)


CampaignObserver = Callable[[Campaign | None, Campaign], None]   # (what a campaign served, what it serves now)


class CampaignNotFound(LookupError):
    """No campaign by that name (and more than one campaign, so a name must choose)."""


class DeployingDisabled(PermissionError):
    """The server was started without a `deploy_root`."""


class SolutionNotFound(InputError):
    """No solution version at that path under the `deploy_root`."""


def solution_under_root(root: Path, solution: str) -> Path:
    """The solution version directory `solution` names (relative to the resolved `root`, or absolute) under
    `root`; an InputError when the path has a `..` part or a NUL, or resolves (an absolute path, symbolic
    links followed) outside `root`, or when a file in it does; SolutionNotFound when it is inside and holds no
    solution version."""
    if "\0" in solution or ".." in Path(solution).parts:
        raise InputError("solution: a path under the server's deploy_root, without '..'")
    try:
        path = (root / solution).resolve()
        inside = path.is_relative_to(root) and all(
            Path(folder, name).resolve().is_relative_to(root)
            for folder, dirs, files in os.walk(path) for name in dirs + files)
        found = inside and (path / "solution.json").is_file()
    except (OSError, RuntimeError) as err:   # a name too long, a symbolic link loop, ...
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "a symbolic link loop"
        raise InputError(f"solution: not a readable path under the server's deploy_root: {reason}") from None
    if not inside:
        raise InputError("solution: it (or a file in it) resolves outside the server's deploy_root")
    if not found:
        raise SolutionNotFound(f"solution: no solution version at {solution!r} under the server's deploy_root")
    return path


class Campaigns:
    """The campaigns by name. `predictors`: the startup campaigns (copied: later swaps change only this
    object; `get(name).predictor` is what a campaign serves now). `settings`: each campaign's settings (those of a name not served yet apply when it is deployed).
    `events`: the event store whose PutItems rows auto-updates add. `deploy_root`: where `deploy` may load
    solution versions from (None: deploying is disabled). `update_root`: where auto-updates write their
    solution versions. `deployments`: the log that worker processes share (None: one process); deploys and
    auto-updates are recorded there. `cache_user_states`: predictors loaded later keep users' model states.
    `on_change(old, new)`: told of every campaign served, the startup ones (old None) and each swap (the
    server's metrics)."""

    def __init__(self, predictors: dict[str, Predictor], settings: Mapping[str, CampaignSettings] | None = None, *,
                 events: EventStore, deploy_root: str | Path | None = None,
                 update_root: str | Path = "outputs/serve/updates", deployments: DeploymentLog | None = None,
                 deployed_version: int = 0, cache_user_states: bool = False,
                 on_change: CampaignObserver | None = None):
        settings = dict(settings or {})
        self._served = {name: Campaign(name, p, settings.pop(name, None) or CampaignSettings(), deployed_version)
                        for name, p in predictors.items()}
        self._on_change = on_change
        for campaign in self._served.values():
            self._changed(None, campaign)
        self._unserved_settings = settings
        self._events, self._deployments = events, deployments
        # Who runs each period's auto-update: the shared log (once across workers and hosts), else this process.
        self._schedule: AutoUpdateSchedule = deployments if deployments is not None else LocalAutoUpdateSchedule()
        self._deploy_root = Path(deploy_root).resolve() if deploy_root is not None else None
        self._update_root = update_root
        self._device = next(iter(predictors.values())).device.type if predictors else "cpu"
        self._first_pass = next(iter(predictors.values())).first_pass if predictors else "auto"
        self._cache_user_states = cache_user_states
        self.deployed_version = deployed_version
        self._lock = threading.Lock()   # one change at a time; requests never take it

    # --- requests ---------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._served)

    def get(self, name: str) -> Campaign:
        """The campaign `name`; with exactly one campaign, that one whatever the name."""
        served = self._served
        campaign = served.get(name)
        if campaign is not None:
            return campaign
        if len(served) == 1:
            return next(iter(served.values()))
        raise CampaignNotFound(f"campaign {name!r} does not exist; campaigns: {', '.join(sorted(served))}")

    # --- changes ----------------------------------------------------------------------------------------
    def deploy(self, name: str, solution: str, settings: Mapping[str, object]) -> Campaign:
        """Serve the solution version `solution` (a directory under `deploy_root`) as campaign `name`
        (Personalize's CreateCampaign / UpdateCampaign), with `settings` (CampaignSettings fields) changed
        from the campaign's current ones. Loaded and warmed up while the old one keeps serving. Raises
        DeployingDisabled, SolutionNotFound, or InputError for a bad name, a path outside the root (see
        `solution_under_root`) or a solution that does not load."""
        if self._deploy_root is None:
            raise DeployingDisabled("deploying is disabled; start the server with deploy_root=<dir>")
        if not CAMPAIGN_NAME.fullmatch(name):
            raise InputError("campaign names are 1-63 letters, digits, '.', '_' or '-', starting with a letter or "
                             "digit")
        path = solution_under_root(self._deploy_root, solution)
        try:
            predictor = self._load(path)               # catalogue built now, not by the first request
        except (InputError, OSError, ValueError, KeyError) as err:
            raise InputError(f"solution: cannot load it: {err}") from None
        with self._lock:
            current = self._served.get(name)
            base = current.settings if current is not None else self._unserved_settings.get(name, CampaignSettings())
            merged = CampaignSettings(**{**asdict(base), **settings})
            return self._swap(name, predictor, merged, self._record(name, path, merged, current))

    def auto_updating(self) -> dict[str, float]:
        """Minutes between auto-updates, for each campaign that has them."""
        return {c.name: c.settings.auto_update_minutes for c in list(self._served.values())
                if c.settings.auto_update_minutes}

    def auto_update_if_due(self, name: str, minutes: float) -> bool:
        """`auto_update(name)` when its period (`minutes`) is due and this process claims it: once per
        period across the processes that share the deployment log (see `deployment_log`). Blocking."""
        if not self._schedule.claim_auto_update(name, 60 * minutes):
            return False
        try:
            return self.auto_update(name)
        finally:
            self._schedule.finish_auto_update(name, 60 * minutes)

    def auto_update(self, name: str) -> bool:
        """UPDATE campaign `name` with the PutItems items its solution version lacks, and serve the result
        (see `auto_update`); False when nothing was pending or the campaign was deployed again meanwhile
        (here, or by another process: not loaded here yet). Blocking: seconds to minutes."""
        current = self._served[name]
        if self._deployments is not None and any(d.campaign == name for d in self._deployments.after(current.version)):
            log.info("auto-update of campaign %s skipped: a newer deploy of it is being loaded", name)
            return False
        updated = update_campaign(current.predictor, self._events, self._update_root)
        if updated is None:
            return False
        with self._lock:
            if self._served.get(name) is not current:   # a deploy came first: it wins
                log.info("auto-update of campaign %s dropped: the campaign changed meanwhile", name)
                return False
            self._swap(name, updated, current.settings,
                       self._record(name, updated.solution.path.resolve(), current.settings, current))
        return True

    def apply_deployments(self, seen: int) -> int:
        """Serve the deploys other worker processes recorded in the deployment log after version `seen`
        (each campaign's newest); the newest version read. A deploy that does not load is logged and
        skipped (the campaign keeps serving what it served). Blocking."""
        try:
            pending = self._deployments.after(seen)
        except Exception:  # a locked or busy database: try again at the next poll
            log.exception("reading the deployment log failed")
            return seen
        for d in pending:
            seen = max(seen, d.version)
            with self._lock:   # (waits for a deploy being recorded here to be served)
                if self._served_version(d.campaign) >= d.version:
                    continue       # this worker made it
            try:
                settings = CampaignSettings(**d.settings)
                predictor = self._load(d.solution)
            except Exception:  # keep serving what it served
                log.exception("loading %s for campaign %s failed", d.solution, d.campaign)
                continue
            with self._lock:
                if self._served_version(d.campaign) < d.version:
                    self._swap(d.campaign, predictor, settings, d.version)
        return seen

    # --- inside -----------------------------------------------------------------------------------------
    def _load(self, path: str | Path) -> Predictor:
        return Predictor.load_warm(path, self._device, self._cache_user_states, self._first_pass)

    def _served_version(self, name: str) -> int:
        campaign = self._served.get(name)
        return campaign.version if campaign is not None else -1

    def _record(self, name: str, solution: Path, settings: CampaignSettings, current: Campaign | None) -> int:
        """The deployment-log version of a change made here (recorded, so the other workers load it too)."""
        if self._deployments is not None:
            return self._deployments.record(name, solution, settings)
        return current.version if current is not None else self.deployed_version

    def _swap(self, name: str, predictor: Predictor, settings: CampaignSettings, version: int) -> Campaign:
        campaign = Campaign(name, predictor, settings, version)
        old = self._served.get(name)
        self._served[name] = campaign
        self._unserved_settings.pop(name, None)
        self._changed(old, campaign)
        return campaign

    def _changed(self, old: Campaign | None, new: Campaign) -> None:
        if self._on_change is not None:
            try:
                self._on_change(old, new)
            except Exception:  # a report that fails leaves the campaign served
                log.exception("reporting the change of campaign %s failed", new.name)


async def auto_update_loop(campaigns: Campaigns) -> None:
    """Every campaign with auto_update_minutes: UPDATE it with new PutItems items when its period is due
    and this process claims it."""
    while True:
        await asyncio.sleep(min([1.0] + [60 * m / 4 for m in campaigns.auto_updating().values()]))
        for name, minutes in campaigns.auto_updating().items():
            try:
                await asyncio.to_thread(campaigns.auto_update_if_due, name, minutes)
            except Exception:  # a failed update (or claim) leaves the campaign serving what it served
                log.exception("auto-update of campaign %s failed", name)


async def follow_deployments_loop(campaigns: Campaigns, poll_seconds: float) -> None:
    """Serve the deploys that other worker processes record (see `deployment_log`), polling the log."""
    seen = campaigns.deployed_version
    while True:
        await asyncio.sleep(poll_seconds)
        seen = await asyncio.to_thread(campaigns.apply_deployments, seen)

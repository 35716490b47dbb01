"""Serve solution versions over HTTP with Personalize Runtime's and Personalize Events' APIs:
`personalize-serve` (installed) or `python serve.py` (repository).

    python serve.py solution=<dir> port=8080 [events_db=outputs/serve/events.sqlite]
    python serve.py 'campaigns={shop: outputs/a/solution, news: outputs/b/solution}'
    python serve.py solution=<dir> 'filters={no_horror: "EXCLUDE ItemID WHERE Items.GENRES IN (\"Horror\")"}'
    python serve.py solution=<dir> workers=2      # one process per core (POSIX), sharing events_db
    python serve.py solution=<dir> log_format=json   # every log line one JSON object

`GET /metrics` answers Prometheus' scrapes; with workers=2 or more, the metrics of all workers are summed
through a temporary directory made here before the workers start (serving/http/metrics_directory.py).
"""

import contextlib
import functools
import logging
import os
import sqlite3
import sys

import hydra
from omegaconf import DictConfig

from personalize_torch.errors import InputError
from personalize_torch.log_format import check_log_format, structured_handler


@hydra.main(version_base="1.3", config_path="pkg://personalize_torch.configs", config_name="serve")
def main(cfg: DictConfig) -> None:
    try:
        workers = int(cfg.workers)
        if workers < 1:
            raise InputError(f"must be at least 1, got {workers}", column="workers")
        check_log_format(cfg.log_format)
    except InputError as err:
        print(f"error: {err.describe()}", file=sys.stderr)
        sys.exit(2)
    # Before anything imports prometheus-client: it reads the directory's variable once, when imported.
    from personalize_torch.serving.http.metrics_directory import shared_metrics_directory

    with shared_metrics_directory() if workers > 1 else contextlib.nullcontext() as metrics_path:
        code = serve(cfg, workers, metrics_path)
    if code:
        sys.exit(code)


def serve(cfg: DictConfig, workers: int, metrics_path: str | None) -> int:
    """Load the campaigns and serve them until stopped; the exit code. `metrics_path`: the workers' shared
    metrics directory (workers > 1)."""
    import torch
    import uvicorn
    from omegaconf import OmegaConf
    from uvicorn.config import LOGGING_CONFIG

    from personalize_torch.filters import Filter
    from personalize_torch.serving.campaigns import CampaignSettings
    from personalize_torch.serving.events.deployment_log import DeploymentLog
    from personalize_torch.serving.events.event_store import SYNCHRONOUS_MODES, EventStore
    from personalize_torch.serving.events.store_url import in_memory, redacted
    from personalize_torch.serving.http.api_keys import ApiKeys
    from personalize_torch.serving.http.app import create_app
    from personalize_torch.serving.http.metrics_directory import worker_exited
    from personalize_torch.serving.http.throttling import ThrottleSettings
    from personalize_torch.serving.http.worker_processes import exit_on_stop_signals, serve_in_processes
    from personalize_torch.serving.inference.predictor import Predictor
    from personalize_torch.serving.inference.state_scoring import FIRST_PASSES

    # One intra-op thread per request: requests are small, and on a busy machine several threads per tiny
    # matmul spend their time waiting on each other (measured: 325 ms -> 17 ms per request at load 4.5).
    torch.set_num_threads(max(1, int(cfg.torch_threads)))
    try:
        if workers > 1 and in_memory(cfg.events_db):
            raise InputError("several workers share their events through a database file (or PostgreSQL); "
                             "give events_db=<file> or a postgresql:// URL", column="events_db")
        first_pass = str(cfg.first_pass)
        if first_pass not in FIRST_PASSES:
            raise InputError(f"must be one of {', '.join(FIRST_PASSES)}, got {first_pass!r}", column="first_pass")
        entries = OmegaConf.to_container(cfg.campaigns) if cfg.campaigns else {}
        if cfg.solution:
            entries.setdefault("default", {"solution": cfg.solution, "exploration_weight": cfg.exploration_weight,
                                           "exploration_item_age_cut_off": cfg.exploration_item_age_cut_off,
                                           "backfill_popular": cfg.backfill_popular,
                                           "auto_update_minutes": cfg.auto_update_minutes})
        if not entries:
            raise InputError("nothing to serve: give solution=<dir> or campaigns={name: dir}", column="solution")
        campaigns, settings = {}, {}
        for name, entry in entries.items():
            entry = {"solution": entry} if isinstance(entry, str) else dict(entry)
            campaigns[name] = Predictor.load_warm(entry.pop("solution"), cfg.device,
                                                  cache_user_states=bool(cfg.user_state_cache),
                                                  first_pass=first_pass)
            settings[name] = CampaignSettings(**entry)
        filters = {}
        for name, expression in (cfg.filters or {}).items():
            try:
                filters[name] = Filter.parse(expression)
            except InputError as err:
                raise InputError(f"filter {name!r}: {err.describe()}", column="filters") from None
        ApiKeys(keys_file=cfg.api_keys_file)   # read now: a missing or empty keys file is an error at start
        throttling = ThrottleSettings(cfg.campaign_requests_per_second, cfg.put_events_per_second,
                                      float(cfg.throttle_burst_seconds)).share(workers)
        if str(cfg.events_synchronous).upper() not in SYNCHRONOUS_MODES:
            raise InputError(f"must be one of {', '.join(SYNCHRONOUS_MODES)}", column="events_synchronous")
        try:
            events = EventStore(cfg.events_db, synchronous=cfg.events_synchronous)
        except (sqlite3.Error, OSError, RuntimeError, ValueError) as err:
            raise InputError(f"cannot open the events database: {err}", file=redacted(cfg.events_db),
                             column="events_db") from None
    except InputError as err:
        print(f"error: {err.describe()}", file=sys.stderr)
        return 2
    access_log = logging.getLogger("personalize_torch.access")
    access_log.addHandler(structured_handler(cfg.log_format))
    access_log.setLevel(logging.INFO if cfg.access_log else logging.WARNING)
    access_log.propagate = False   # one line per request on stderr, not again through Hydra's root logger
    # text: uvicorn's own format; json: no config of uvicorn's, so its lines reach the root logger's JSON handler
    # (hydra/job_logging/text_or_json.yaml)
    uvicorn_logging = LOGGING_CONFIG if cfg.log_format == "text" else None
    api_key = cfg.api_key or os.environ.get("PERSONALIZE_TORCH_API_KEY") or None
    # The startup campaigns go into the deployment log (in the events database) that worker processes
    # share: deploys made later by any of them reach the others (serving/events/deployment_log.py).
    deployments, deployed_version = None, 0
    if not events.in_memory:
        deployments = DeploymentLog(cfg.events_db)
        for name, predictor in campaigns.items():
            deployed_version = deployments.record(name, predictor.solution.path.resolve(), settings[name])

    def make_app(worker: int, store: EventStore, log: DeploymentLog | None):
        return create_app(campaigns, filters, settings, store, api_key=api_key,
                          max_request_bytes=cfg.max_request_bytes, deploy_root=cfg.deploy_root,
                          update_root=cfg.update_root, max_batch=int(cfg.max_batch), deployments=log,
                          deployed_version=deployed_version, worker=worker,
                          cache_user_states=bool(cfg.user_state_cache), api_keys_file=cfg.api_keys_file,
                          throttling=throttling)

    # SIGTERM / SIGINT: stop accepting, finish the requests in flight (for at most this long), exit 0
    shutdown = {"timeout_graceful_shutdown": float(cfg.graceful_shutdown_seconds)}
    if workers == 1:
        try:
            with exit_on_stop_signals():
                uvicorn.run(make_app(0, events, deployments), host=cfg.host, port=cfg.port, log_level=cfg.log_level,
                            access_log=False, log_config=uvicorn_logging, **shutdown)
        finally:
            events.close()
            if deployments is not None:
                deployments.close()
        return 0

    # SQLite connections must not cross fork(): each worker opens its own.
    events.close()
    deployments.close()

    def run_worker(index: int, sock) -> None:
        store = EventStore(cfg.events_db, synchronous=cfg.events_synchronous)
        log = DeploymentLog(cfg.events_db)
        try:
            server = uvicorn.Server(uvicorn.Config(make_app(index, store, log), log_level=cfg.log_level,
                                                   access_log=False, log_config=uvicorn_logging, **shutdown))
            with exit_on_stop_signals():
                server.run(sockets=[sock])
            if not server.started:
                sys.exit(3)   # uvicorn's code for a server that could not start (the parent stops then)
        finally:
            store.close()
            log.close()

    try:
        return serve_in_processes(run_worker, workers, cfg.host, cfg.port, pin_cores=bool(cfg.pin_workers),
                                  on_worker_exit=functools.partial(worker_exited, metrics_path))
    except OSError as err:
        print(f"error: cannot listen on {cfg.host}:{cfg.port}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    main()

"""The server's Prometheus metrics, scraped at `GET /metrics` (prometheus-client's text format).

| metric | type | labels | what |
|---|---|---|---|
| personalize_torch_requests_total | counter | operation, campaign | requests answered |
| personalize_torch_request_errors_total | counter | operation, campaign, error_type | error answers, by AWS error code |
| personalize_torch_request_duration_seconds | histogram | operation, campaign | time to answer |
| personalize_torch_ingested_records_total | counter | kind (events, items, users) | records stored by PutEvents / PutItems / PutUsers |
| personalize_torch_micro_batch_size | histogram | | GetRecommendations rows per model call |
| personalize_torch_micro_batch_queue_wait_seconds | histogram | | a row's wait for its model call |
| personalize_torch_campaign_model | gauge | campaign, solution_version, recipe | 1 for the solution version a campaign serves |
| personalize_torch_user_state_cache_hits_total | counter | campaign | users whose kept model state was used |
| personalize_torch_user_state_cache_misses_total | counter | campaign | users whose state was computed for the request |

`operation` is the API operation (GetRecommendations, GetPersonalizedRanking, PutEvents, PutItems, PutUsers,
DeployCampaign, Ping, Metrics, Other: see `request_record.operation_name`); `campaign` the campaign that
answered ("" when none did: events, or a campaign that does not exist); `error_type` the AWS error code the
answer carries (InvalidInputException, ResourceNotFoundException, UnrecognizedClientException, ...).

With several worker processes (serve.py `workers=N`), each writes its values to files in a directory the
parent created (prometheus-client's multiprocess mode, see `metrics_directory`), and a scrape, answered by any
worker, reads them all: counters and histograms are summed over the workers, dead ones included (a restart does
not lower a total); `campaign_model` is the largest value over the live workers, so while a deploy reaches the
workers both solution versions show 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.responses import Response

from personalize_torch.serving.campaigns import Campaign
from personalize_torch.serving.http.request_record import RequestRecord

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """One server's metrics, in a registry of their own (several apps in one process count apart).
    `multiprocess_dir`: the directory of prometheus-client's multiprocess mode when the server runs several
    worker processes (`metrics_directory.shared_metrics_directory()`); a scrape then reads every worker's
    values from it. None: this process's values."""

    def __init__(self, multiprocess_dir: str | None = None):
        self.multiprocess_dir = multiprocess_dir
        self.registry = r = CollectorRegistry()
        self.requests = Counter("personalize_torch_requests", "Requests answered, by API operation and campaign.",
                                ["operation", "campaign"], registry=r)
        self.errors = Counter("personalize_torch_request_errors",
                              "Error answers, by API operation, campaign and AWS error code.",
                              ["operation", "campaign", "error_type"], registry=r)
        self.latency = Histogram("personalize_torch_request_duration_seconds",
                                 "Seconds from a request's arrival to its answer, by API operation and campaign.",
                                 ["operation", "campaign"], buckets=LATENCY_BUCKETS, registry=r)
        self.ingested = Counter("personalize_torch_ingested_records",
                                "Records stored by PutEvents (events), PutItems (items) and PutUsers (users).",
                                ["kind"], registry=r)
        self.batch_size = Histogram("personalize_torch_micro_batch_size",
                                    "GetRecommendations requests computed in one model call (micro-batching).",
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.queue_wait = Histogram("personalize_torch_micro_batch_queue_wait_seconds",
                                    "Seconds a GetRecommendations request waited for its model call.",
                                    buckets=QUEUE_WAIT_BUCKETS, registry=r)
        self.campaign_model = Gauge("personalize_torch_campaign_model",
                                    "1 for the solution version (directory) and recipe a campaign serves, 0 for "
                                    "those it served before.", ["campaign", "solution_version", "recipe"],
                                    multiprocess_mode="livemax", registry=r)
        self.state_hits = Counter("personalize_torch_user_state_cache_hits",
                                  "Users whose kept model state (user_state_cache, user_states.npy) was used.",
                                  ["campaign"], registry=r)
        self.state_misses = Counter("personalize_torch_user_state_cache_misses",
                                    "Users whose model state was computed for the request (streamed events, "
                                    "users the solution version does not know, states not kept yet).",
                                    ["campaign"], registry=r)

        self._series: dict[tuple[str, str], tuple] = {}   # (operation, campaign) -> (requests, latency) children

    # --- what the server reports ------------------------------------------------------------------------
    def request_done(self, record: RequestRecord, seconds: float) -> None:
        labels = (record.operation, record.campaign or "")
        series = self._series.get(labels)
        if series is None:   # `labels()` costs a few microseconds; the label sets are few
            series = self._series[labels] = (self.requests.labels(*labels), self.latency.labels(*labels))
        series[0].inc()
        series[1].observe(seconds)
        if record.error is not None:
            self.errors.labels(*labels, record.error).inc()

    def records_ingested(self, kind: str, count: int) -> None:
        """`count` records of `kind` ("events", "items" or "users") stored."""
        self.ingested.labels(kind).inc(count)

    def batch_ran(self, size: int, waits: Sequence[float]) -> None:
        """A model call for `size` requests, which waited `waits` seconds each (see `MicroBatcher`)."""
        self.batch_size.observe(size)
        for wait in waits:
            self.queue_wait.observe(wait)

    def campaign_changed(self, old: Campaign | None, new: Campaign) -> None:
        """`new` is served (at start, or by a deploy or an auto-update) in place of `old`: the campaign's model
        gauge moves to its solution version, and its user states count their hits and misses."""
        if old is not None:
            self.campaign_model.labels(*_model_labels(old)).set(0)
        self.campaign_model.labels(*_model_labels(new)).set(1)
        kept_states = [s for s in (new.predictor.user_states, new.predictor.stored_states) if s is not None]
        if not kept_states:   # a recipe without user states: no series for it
            return
        hits, misses = self.state_hits.labels(new.name), self.state_misses.labels(new.name)

        def count(hit: int, missed: int) -> None:
            if hit:
                hits.inc(hit)
            if missed:
                misses.inc(missed)

        for states in kept_states:
            states.on_lookup = count

    # --- GET /metrics -----------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format: every worker's, summed, in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)

    def scrape(self) -> Response:
        """Prometheus metrics (text format): requests, errors by AWS error code and latency per operation and
        campaign; records ingested; micro-batch sizes and queue waits; the solution version each campaign
        serves; user-state cache hits and misses. With several worker processes, summed over them. Needs the
        API key when the server has one (`Authorization: Bearer <key>`, as Prometheus' `authorization` sends it,
        or `x-api-key`)."""
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


def _model_labels(campaign: Campaign) -> tuple[str, str, str]:
    solution = campaign.predictor.solution
    return campaign.name, str(Path(solution.path).resolve()), solution.recipe_name

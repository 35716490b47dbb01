"""Personalize Events' operations: PutEvents (`POST /events`), PutItems (`POST /items`) and PutUsers
(`POST /users`). Each call is one transaction committed to the event store before the (empty) 200
response, so the next request for that user reads it (see events/event_store.py). What was stored is counted
in the server's metrics (`ingested_records_total`, by kind).

When the events database cannot store a call (its disk full, its write lock held too long, PostgreSQL out of
reach; `DatabaseUnavailable`), the call is answered 503 ServiceUnavailable and nothing of it is stored: the
client may send it again, and boto3 does so by itself (a few times, with backoff) before raising. A 4xx would
tell a client that its request was wrong and must not be sent again as it is, and a well-behaved client would
drop the events. Reads (GetRecommendations) keep being answered meanwhile, and writes are accepted again as
soon as the database can take them, with no restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.responses import Response

from personalize_torch.serving.events.database import DatabaseUnavailable
from personalize_torch.serving.events.event_store import Event, EventStore
from personalize_torch.serving.http.api_models import PutEventsRequest, PutItemsRequest, PutUsersRequest
from personalize_torch.serving.http.errors import service_unavailable
from personalize_torch.serving.http.server_metrics import ServerMetrics

log = logging.getLogger(__name__)


def stored(operation: str, write: Callable[[], object]) -> None:
    """Run `write` (one event store call); a database that cannot take it now becomes a 503 for the client."""
    try:
        write()
    except DatabaseUnavailable as err:
        cause = str(err.__cause__) if err.__cause__ is not None else str(err)
        log.error("%s not stored: the events database is unavailable: %s", operation,
                  err if cause == str(err) else f"{err} ({cause.strip()})")
        raise service_unavailable(f"the events database cannot store this call now ({err.reason}); nothing of it "
                                  "was stored: send it again later") from None


class EventsHandlers:
    def __init__(self, events: EventStore, metrics: ServerMetrics):
        self.events, self.metrics = events, metrics

    def put_events(self, req: PutEventsRequest) -> Response:
        events = [Event(event_type=e.eventType, sent_at=e.sentAt, item_id=e.itemId, event_id=e.eventId,
                        event_value=e.eventValue, properties=e.properties,
                        impression=tuple(e.impression) if e.impression is not None else None,
                        recommendation_id=e.recommendationId,
                        metric_attribution=e.metricAttribution.eventAttributionSource if e.metricAttribution else None)
                  for e in req.eventList]
        stored("PutEvents", lambda: self.events.put_events(req.trackingId, req.sessionId, req.userId, events))
        self.metrics.records_ingested("events", len(req.eventList))
        return Response(status_code=200)

    def put_items(self, req: PutItemsRequest) -> Response:
        stored("PutItems", lambda: self.events.put_items(req.datasetArn, [(i.itemId, i.properties) for i in req.items]))
        self.metrics.records_ingested("items", len(req.items))
        return Response(status_code=200)

    def put_users(self, req: PutUsersRequest) -> Response:
        stored("PutUsers", lambda: self.events.put_users(req.datasetArn, [(u.userId, u.properties) for u in req.users]))
        self.metrics.records_ingested("users", len(req.users))
        return Response(status_code=200)

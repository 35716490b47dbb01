"""Personalize Events' operations: PutEvents (`POST /events`), PutItems (`POST /items`) and PutUsers
(`POST /users`). Each call is one transaction committed to the event store before the (empty) 200
response, so the next request for that user reads it (see events/event_store.py). What was stored is counted
in the server's metrics (`ingested_records_total`, by kind).
"""

from __future__ import annotations

from starlette.responses import Response

from personalize_torch.serving.events.event_store import Event, EventStore
from personalize_torch.serving.http.api_models import PutEventsRequest, PutItemsRequest, PutUsersRequest
from personalize_torch.serving.http.server_metrics import ServerMetrics


class EventsHandlers:
    def __init__(self, events: EventStore, metrics: ServerMetrics):
        self.events, self.metrics = events, metrics

    def put_events(self, req: PutEventsRequest) -> Response:
        self.events.put_events(req.trackingId, req.sessionId, req.userId, [
            Event(event_type=e.eventType, sent_at=e.sentAt, item_id=e.itemId, event_id=e.eventId,
                  event_value=e.eventValue, properties=e.properties,
                  impression=tuple(e.impression) if e.impression is not None else None,
                  recommendation_id=e.recommendationId,
                  metric_attribution=e.metricAttribution.eventAttributionSource if e.metricAttribution else None)
            for e in req.eventList])
        self.metrics.records_ingested("events", len(req.eventList))
        return Response(status_code=200)

    def put_items(self, req: PutItemsRequest) -> Response:
        self.events.put_items(req.datasetArn, [(i.itemId, i.properties) for i in req.items])
        self.metrics.records_ingested("items", len(req.items))
        return Response(status_code=200)

    def put_users(self, req: PutUsersRequest) -> Response:
        self.events.put_users(req.datasetArn, [(u.userId, u.properties) for u in req.users])
        self.metrics.records_ingested("users", len(req.users))
        return Response(status_code=200)

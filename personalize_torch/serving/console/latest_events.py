"""The latest events to reach the event store (the Events page), newest first."""

from __future__ import annotations

from personalize_torch.serving.events.event_store import EventStore

MAX_PAGES = 100


def latest_events(events: EventStore, limit: int) -> tuple[int, list[dict]]:
    """(events in the store, the newest `limit` as `api_models.StoreEvent`). Reads from sequence number
    count - limit on (sequence numbers may have gaps: then a few pages more), keeping the last `limit`."""
    total = events.count_events()
    after, newest = max(0, total - limit), []
    for _ in range(MAX_PAGES):
        page = events.events(after_seq=after, limit=max(limit, 1))
        newest = (newest + page)[-limit:] if limit else []
        if len(page) < max(limit, 1):
            break
        after = page[-1].seq
    return total, [{"userId": e.user_id, "sessionId": e.session_id, "eventType": e.event_type, "itemId": e.item_id,
                    "eventValue": e.event_value, "sentAt": e.sent_at, "receivedAt": e.received_at,
                    "recommendationId": e.recommendation_id, "properties": e.properties} for e in reversed(newest)]

"""A user's streamed events (PutEvents, read from the event store) as a predictor's model input."""

from __future__ import annotations

from personalize_torch.serving.events.event_store import UserEventColumns, property_fields
from personalize_torch.serving.inference.predictor import Predictor, RecentEvents


def recent_events(stored: UserEventColumns, predictor: Predictor) -> RecentEvents | None:
    """A user's stored events as the predictor's input. Contexts (event `properties` whose names match
    the solution's contextual fields) are read only when the solution has contextual fields, and only for
    the events the model reads."""
    if not len(stored):
        return None
    contexts = None
    if predictor.solution.context_vocabs:
        n = min(predictor.recipe.input_length or len(stored), len(stored))
        contexts = [None] * (len(stored) - n) + [property_fields(p) for p in stored.properties[len(stored) - n:]]
    return RecentEvents(item_ids=stored.item_ids, timestamps=stored.sent_at, event_types=stored.event_types,
                        event_values=stored.event_values, contexts=contexts)

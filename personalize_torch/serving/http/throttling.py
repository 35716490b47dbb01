"""Request rates the server admits, as Personalize's quotas do: each campaign's GetRecommendations and
GetPersonalizedRanking calls, and the server's PutEvents calls (Personalize limits PutEvents per dataset
group; a server is one dataset group). A request over its rate is answered at once with HTTP 400
`ThrottlingException` (AWS's shape), which boto3 retries with backoff, rather than queued: under overload,
the requests admitted keep their latency and the rest are refused in microseconds.

Each limit is a token bucket: `rate` tokens a second, holding at most `burst` (one second's worth by default),
one token per call. With several worker processes each has its own buckets; serve.py gives each worker its
share of the configured rate (`rate / workers`), so the server as a whole admits about the configured rate
when the kernel spreads connections evenly over the workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from personalize_torch.errors import InputError


class TokenBucket:
    """`rate` calls a second on average, up to `burst` at once. Safe to call from several threads (the event
    loop and FastAPI's thread pool)."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(frozen=True)
class ThrottleSettings:
    """`campaign_requests_per_second`: GetRecommendations + GetPersonalizedRanking calls a second per campaign;
    `put_events_per_second`: PutEvents calls a second for the server; None = no limit. `burst_seconds`: how
    many seconds' worth of calls may come at once."""

    campaign_requests_per_second: float | None = None
    put_events_per_second: float | None = None
    burst_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in ("campaign_requests_per_second", "put_events_per_second", "burst_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"must be a positive number (or null for no limit), got {value}", column=name)

    def share(self, workers: int) -> ThrottleSettings:
        """Each of `workers` processes' part of these rates."""
        def part(rate: float | None) -> float | None:
            return rate / workers if rate is not None else None
        return ThrottleSettings(part(self.campaign_requests_per_second), part(self.put_events_per_second),
                                self.burst_seconds)


class Throttles:
    """The buckets of one server process: one per campaign (made when a campaign is first asked for) and one
    for PutEvents."""

    def __init__(self, settings: ThrottleSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or ThrottleSettings()
        self._clock = clock
        self._campaigns: dict[str, TokenBucket] = {}
        self._put_events = self._bucket(self.settings.put_events_per_second)

    def _bucket(self, rate: float | None) -> TokenBucket | None:
        if rate is None:
            return None
        return TokenBucket(rate, max(1.0, rate * self.settings.burst_seconds), self._clock)

    def admit_campaign(self, name: str) -> bool:
        rate = self.settings.campaign_requests_per_second
        if rate is None:
            return True
        bucket = self._campaigns.get(name)
        if bucket is None:
            bucket = self._campaigns.setdefault(name, self._bucket(rate))
        return bucket.admit()

    def admit_put_events(self) -> bool:
        return self._put_events is None or self._put_events.admit()

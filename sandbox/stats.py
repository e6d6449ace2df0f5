"""What the sandbox counts (`ServerStats`) and how it can be made to misbehave (`Faults`)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = ("delta", "permissions", "download", "page", "site", "drive", "batch", "user", "sharepoint_rest", "other")


class ServerStats:
    """Thread-safe request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._throttled = 0
            self._unauthorized = 0
            self._downloads = 0
            self._bytes = 0

    def count(self, kind: str) -> None:
        """Count one request of `kind` (one of KINDS)."""
        with self._lock:
            self._requests[kind if kind in KINDS else "other"] += 1

    def count_throttled(self) -> None:
        """Count one request answered with a throttling status."""
        with self._lock:
            self._throttled += 1

    def count_unauthorized(self) -> None:
        """Count one request refused for want of a valid token."""
        with self._lock:
            self._unauthorized += 1

    def count_download(self) -> None:
        """Count one file body served."""
        with self._lock:
            self._downloads += 1

    def add_bytes(self, count: int) -> None:
        """Count downloaded bytes."""
        with self._lock:
            self._bytes += count

    def snapshot(self) -> dict[str, Any]:
        """`{"requests": {kind: n, ...every kind...}, "total_requests", "throttled",
        "unauthorized", "downloads", "bytes_downloaded"}`."""
        with self._lock:
            requests = {kind: self._requests.get(kind, 0) for kind in KINDS}
            return {
                "requests": requests,
                "total_requests": sum(requests.values()),
                "throttled": self._throttled,
                "unauthorized": self._unauthorized,
                "downloads": self._downloads,
                "bytes_downloaded": self._bytes,
            }


@dataclass
class Faults:
    """Knobs that make the sandbox misbehave like the real service. Change them at any time.

    `throttle_rate` is the share of Graph requests ($batch sub-requests included, each on its
    own) answered `throttle_status` with `Retry-After: retry_after` (whole seconds: kiota
    ignores 0 and falls back to its own 3 s+ backoff). The draw uses a seeded random.Random.
    """

    throttle_rate: float = 0.0
    retry_after: int = 1
    throttle_status: int = 429
    throttle_sharepoint_rest: bool = False
    latency_s: float = 0.0
    permission_errors: dict[str, int] = field(default_factory=dict)  # item id -> status
    gone_drives: set[str] = field(default_factory=set)  # delta with a token -> 410
    garbled_drives: set[str] = field(default_factory=set)  # delta -> 200 with an HTML page (a proxy's)
    site_group_errors: dict[int, int] = field(default_factory=dict)  # site group id -> status
    seed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def should_throttle(self) -> bool:
        """Draw whether to throttle this request."""
        if self.throttle_rate <= 0:
            return False
        with self._lock:
            return self._random.random() < self.throttle_rate

    def reseed(self, seed: int) -> None:
        """Restart the throttling draws from `seed`."""
        with self._lock:
            self.seed = seed
            self._random = random.Random(seed)

    def clear(self) -> None:
        """Back to a well-behaved service."""
        self.throttle_rate = 0.0
        self.latency_s = 0.0
        self.permission_errors.clear()
        self.gone_drives.clear()
        self.garbled_drives.clear()
        self.site_group_errors.clear()
        self.reseed(self.seed)

"""Following Production without a restart.

A daemon thread asks the ``ModelSource`` for the Production version every ``interval_s`` (or
at once when ``nudge()`` is called, e.g. by the registry webhook). When the version changes it
builds the new deployment in that thread (download, SHA-256 check, deserialization, scorer,
feature reader for the model's FeatureService) and only then swaps one reference. A request
reads ``current`` once and keeps that deployment for its whole life, so a swap never fails or
mixes a request. A version that fails to load (missing or tampered artifact) keeps the previous
deployment serving and is retried with exponential backoff (``retry_base_s`` doubling up to
``retry_max_s``); ``refresh(retry_now=True)`` (the webhook / ``POST /model/refresh``) retries at
once, so a repaired artifact loads. When nothing is served yet and the registry's version
fails, ``fallback`` (the last version this host verified, if any) is loaded instead and
``problem`` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from serving.model_source import ModelRef, ModelSource

logger = logging.getLogger(__name__)
D = TypeVar("D")


class ModelWatcher(Generic[D]):
    """Holds the current deployment ``D`` and replaces it when Production moves."""

    def __init__(
        self,
        *,
        source: ModelSource,
        build: Callable[[ModelRef], D],
        interval_s: float,
        on_swap: Callable[[ModelRef, D], None] = lambda ref, d: None,
        on_failure: Callable[[ModelRef | None, Exception], None] = lambda ref, e: None,
        fallback: Callable[[], ModelRef | None] = lambda: None,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._build = build
        self._interval = interval_s
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._current: D | None = None
        self._current_ref: ModelRef | None = None
        self._failed: ModelRef | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._fallback = fallback
        self._fell_back = False  # serving the fallback (the registry's version never loaded here)
        self._retry_base = retry_base_s
        self._retry_max = retry_max_s
        self._clock = clock
        self.registry_ref: ModelRef | None = None  # what the registry named at the last check
        self.problem: str | None = None  # why the served version is not the registry's (None: it is)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> D | None:
        return self._current

    @property
    def current_ref(self) -> ModelRef | None:
        return self._current_ref

    def refresh(self, *, retry_now: bool = False) -> bool:
        """Check Production once; load and swap if it moved. True when a swap happened.

        A version that failed before is retried only once its backoff has passed, or at once
        with ``retry_now``."""
        with self._lock:
            try:
                ref = self._source.production()
            except Exception as error:
                logger.warning("could not read the production alias: %s", error)
                self._on_failure(None, error)
                return False
            self.registry_ref = ref
            if ref is None or ref == self._current_ref:
                if ref is not None:
                    self.problem = None
                return False
            if ref == self._failed and not retry_now and self._clock() < self._retry_at:
                return False
            try:
                deployment = self._build(ref)
            except Exception as error:
                self._failed_to_load(ref, error)
                return False
            self._current, self._current_ref, self._failed = deployment, ref, None
            self._failures, self.problem, self._fell_back = 0, None, False
            logger.info("serving model %s version %s", ref.name, ref.version)
            self._on_swap(ref, deployment)
            return True

    def _failed_to_load(self, ref: ModelRef, error: Exception) -> None:
        self._failures = self._failures + 1 if ref == self._failed else 1
        self._failed = ref
        delay = min(self._retry_base * 2 ** (self._failures - 1), self._retry_max)
        self._retry_at = self._clock() + delay
        logger.error(
            "model %s version %s failed to load (attempt %d, next retry in %.0f s): %s",
            ref.name,
            ref.version,
            self._failures,
            delay,
            error,
        )
        self._on_failure(ref, error)
        reason = f"registry Production is version {ref.version}, which failed to load: {error}"
        if self._current is None:
            self._load_fallback(ref, reason)
        elif self._fell_back:
            served = self._current_ref.version if self._current_ref else "?"
            self.problem = f"{reason}; serving the last verified version {served} instead"
        else:
            served = self._current_ref.version if self._current_ref else "?"
            self.problem = f"{reason}; still serving version {served}"

    def _load_fallback(self, failed: ModelRef, reason: str) -> None:
        fallback = self._fallback()
        if fallback is None or fallback == failed:
            self.problem = f"{reason}; no earlier verified version to fall back to"
            return
        try:
            deployment = self._build(fallback)
        except Exception as error:
            self.problem = f"{reason}; the last verified version {fallback.version} failed too: {error}"
            logger.error("fallback model version %s failed to load: %s", fallback.version, error)
            return
        self._current, self._current_ref, self._fell_back = deployment, fallback, True
        self.problem = f"{reason}; serving the last verified version {fallback.version} instead"
        logger.warning("%s", self.problem)
        self._on_swap(fallback, deployment)

    def nudge(self) -> None:
        """Check now instead of at the next interval (webhook)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

"""Following Production without a restart.

A daemon thread asks the ``ModelSource`` for the Production version every ``interval_s`` (or
at once when ``nudge()`` is called, e.g. by the registry webhook). When the version changes it
builds the new deployment in that thread (download, SHA-256 check, deserialization, scorer,
feature reader for the model's FeatureService) and only then swaps one reference. A request
reads ``current`` once and keeps that deployment for its whole life, so a swap never fails or
mixes a request. A version that fails to load is not retried until the alias moves again;
the previous deployment keeps serving.
"""

from __future__ import annotations

import logging
import threading
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
    ) -> None:
        self._source = source
        self._build = build
        self._interval = interval_s
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._current: D | None = None
        self._current_ref: ModelRef | None = None
        self._failed: ModelRef | None = None
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

    def refresh(self) -> bool:
        """Check Production once; load and swap if it moved. True when a swap happened."""
        with self._lock:
            try:
                ref = self._source.production()
            except Exception as error:
                logger.warning("could not read the production alias: %s", error)
                self._on_failure(None, error)
                return False
            if ref is None or ref == self._current_ref or ref == self._failed:
                return False
            try:
                deployment = self._build(ref)
            except Exception as error:
                logger.error("model %s version %s failed to load: %s", ref.name, ref.version, error)
                self._failed = ref
                self._on_failure(ref, error)
                return False
            self._current, self._current_ref, self._failed = deployment, ref, None
            logger.info("serving model %s version %s", ref.name, ref.version)
            self._on_swap(ref, deployment)
            return True

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

"""Loading a pipeline's models, now or in the background.

``qa serve`` serves the page first and loads the models meanwhile: a user
sees the page within seconds rather than after the model is read from disk,
and a question asked before the model is ready waits for it (the page says
so). :class:`ModelLoader` does the loading once, in the calling thread
(:meth:`~ModelLoader.load`) or in a thread of its own (:meth:`~ModelLoader.start`),
and keeps any failure as a message for whoever waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .errors import QAError
from .pipeline import Pipeline

log = logging.getLogger(__name__)


class ModelLoader:
    """Loads the answering model, the judge's and the embedder of ``pipeline``, once."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.error: str | None = None  # why loading failed, as a sentence for the reader
        self.seconds = 0.0  # how long loading took
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._begun = False

    @property
    def ready(self) -> bool:
        """Has loading ended (loaded, or failed: see :attr:`error`)?"""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until loading has ended; ``False`` if ``timeout`` seconds passed first."""
        return self._done.wait(timeout)

    def load(self) -> None:
        """Load the models in this thread; raise :class:`~qa.errors.QAError` when one cannot be loaded."""
        with self._lock:
            if self._begun:
                self._done.wait()
                if self.error:
                    raise QAError(self.error)
                return
            self._begun = True
        started = time.perf_counter()
        try:
            for model in (self.pipeline.llm, self.pipeline.checker):
                load = getattr(model, "load", None)
                if callable(load):
                    load()
            self.pipeline.embedder.embed(["warm up"])
        except QAError as exc:
            self.error = str(exc)
            raise
        except Exception as exc:
            log.exception("loading the models failed")
            self.error = (f"The models could not be loaded ({exc or type(exc).__name__}); the server log has "
                          "the details.")
            raise QAError(self.error) from exc
        finally:
            self.seconds = time.perf_counter() - started
            self._done.set()

    def start(self, report: Callable[[str], None] = log.info) -> threading.Thread:
        """Load the models in a background thread, then ``report`` how it went in a sentence; return the thread."""
        def run() -> None:
            try:
                self.load()
            except QAError as exc:
                report(f"{exc} Questions are told so; fix it and start again.")
            else:
                report(f"The models are loaded ({self.seconds:.1f} s).")

        thread = threading.Thread(target=run, name="qa-load-models", daemon=True)
        thread.start()
        return thread

"""Ask questions of a folder of news articles, answered by a local model with checked citations.

>>> from qa import ask
>>> answer = ask("When did the ferry line start running?")  # doctest: +SKIP
>>> answer.text, answer.citations[0].quote  # doctest: +SKIP
"""

from .answer import Answer, Citation, Retrieved
from .api import ask, ask_stream, build_pipeline, ingest, ingest_link, watch_folder
from .config import Settings
from .errors import (
    EmptyQuestionError,
    IndexBusyError,
    IndexNotReadyError,
    LinkError,
    ModelNotFoundError,
    NoArticlesError,
    PeriodError,
    ProvisionError,
    QAError,
    UploadError,
)
from .ingest import IngestReport, LinkResult
from .pipeline import Pipeline

__all__ = [
    "Answer",
    "Citation",
    "EmptyQuestionError",
    "IndexBusyError",
    "IndexNotReadyError",
    "IngestReport",
    "LinkError",
    "LinkResult",
    "ModelNotFoundError",
    "NoArticlesError",
    "PeriodError",
    "Pipeline",
    "ProvisionError",
    "QAError",
    "Retrieved",
    "Settings",
    "UploadError",
    "ask",
    "ask_stream",
    "build_pipeline",
    "ingest",
    "ingest_link",
    "watch_folder",
]

"""Errors the library raises.

Every class here is a mistake or a missing piece the user can fix, so each
message is a full sentence that says what to do. The interfaces (CLI, chat
page) print the message and never a traceback.

    QAError
     ├── EmptyQuestionError      the question was blank
     ├── NoArticlesError         a folder held no readable article
     ├── ModelNotFoundError      the GGUF or embedder folder is missing or broken
     ├── IndexNotReadyError      nothing has been ingested yet, or the store is broken
     ├── IndexBusyError          another ingest holds the data directory
     ├── UploadError             a file added on the chat page was refused
     ├── LinkError               a web address could not be added as an article
     ├── ProvisionError          assembling the default model failed
     ├── ConfigError             a setting (an environment variable or flag) is malformed
     ├── PeriodError             a question's period has a malformed date, or starts after it ends
     └── ServerError             a Chroma or LLM server could not be reached or failed
"""

from __future__ import annotations


class QAError(Exception):
    """Base class: a problem the user can fix; its message says how."""


class EmptyQuestionError(QAError):
    """The question was empty or whitespace only."""


class NoArticlesError(QAError):
    """A folder held no article that could be read."""


class ModelNotFoundError(QAError):
    """A model file or folder is missing, truncated or of the wrong kind."""


class IndexNotReadyError(QAError):
    """The passage index is empty, missing or unreadable."""


class IndexBusyError(QAError):
    """Another process is writing the same index."""


class UploadError(QAError):
    """A file added on the chat page was refused; nothing was changed."""


class LinkError(QAError):
    """A web address could not be fetched, or its page is not an article; nothing was changed."""


class ProvisionError(QAError):
    """The default model could not be assembled."""


class ConfigError(QAError):
    """A setting, from the environment or a flag, is malformed."""


class PeriodError(QAError):
    """A question's period (``since``, ``until``) has a date that is not ``YYYY-MM-DD``, or starts after it ends."""


class ServerError(QAError):
    """A Chroma server or an OpenAI-compatible LLM server could not be reached, or failed."""

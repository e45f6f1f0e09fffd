"""Errors the platform reports to people, not to debuggers.

Every failure a user can cause (a bad file, an unknown name, a broken artifact) is raised as a
``SpineError``: the CLI prints its message on one line and exits non-zero, the services turn it
into a 4xx. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SpineError(Exception):
    """A failure with a message meant for the person who caused it."""


class DataError(SpineError):
    """A data file is missing or does not have the expected shape."""


class ConfigError(SpineError):
    """An unknown profile, deployment, task or service, or a malformed deployment file."""


class ArtifactError(SpineError):
    """A backbone artifact is missing, corrupt, or written by a format this code does not know."""


class BackboneUnavailable(SpineError):
    """The backbone server cannot be reached or is still loading: retry later (a 503, not the caller's fault)."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

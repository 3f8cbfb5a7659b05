"""Exceptions of the survey_mailer package: one base class, subclasses that carry context."""

from __future__ import annotations


class SurveyError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(SurveyError):
    """A setting is missing or has a value that cannot be used."""


class ReadOnlyDatabase(SurveyError):
    """This process may not write the database file, or create the files SQLite keeps
    beside it (in WAL mode even a read needs its -shm file)."""


class NotFound(SurveyError):
    """A named object (campaign, contact, ...) does not exist."""

    def __init__(self, kind: str, key: object):
        super().__init__(f'{kind} "{key}" does not exist')
        self.kind = kind
        self.key = key


class ImportFailed(SurveyError):
    """A CSV import found bad rows; nothing was written."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class BadLink(SurveyError):
    """A link's token is malformed, tampered with or signed for another purpose."""


class LinkExpired(BadLink):
    """A link's token is genuine but older than the allowed age."""

    def __init__(self, message: str, date_signed=None):
        super().__init__(message)
        self.date_signed = date_signed


class DeliveryError(SurveyError):
    """A backend could not hand a message over."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class SendingStopped(SurveyError):
    """The provider refuses to send any more (quota, suspension): stop the campaign."""


class FateUnknown(DeliveryError):
    """The connection broke after the message was handed over: it may have been sent.

    The sender leaves such a delivery `sending` (unknown), like after a crash, so it is
    resent only when asked; resending it blindly could deliver it twice.
    """


class Invalid(SurveyError):
    """A value given to the library is not acceptable; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class Refused(SurveyError):
    """A survey cannot be sent to this person, for a `reason` a program can act on."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

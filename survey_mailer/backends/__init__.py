"""Mail backends: hand one finished RFC 5322 message to a transport.

Every backend has `send(envelope, message) -> str` (the provider's message id) and
`close()`. They raise `DeliveryError` (permanent for one address, or transient) or
`SendingStopped` when the provider refuses to send anything more.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config


@dataclass(frozen=True)
class Envelope:
    """Who a message goes to and which delivery it belongs to."""

    sender: str
    recipient: str
    key: str  # unique per delivery ("c3-d42"); names outbox files, tags SES messages
    campaign_id: int
    delivery_id: int


def get_backend(config: Config):
    """Return the backend named by SURVEY_MAIL_BACKEND."""
    name = config["SURVEY_MAIL_BACKEND"]
    if name == "outbox":
        from .outbox import OutboxBackend

        return OutboxBackend(config["SURVEY_OUTBOX_DIR"])
    if name == "smtp":
        from .smtp import SMTPBackend

        return SMTPBackend.from_config(config)
    from .ses import SESBackend

    return SESBackend.from_config(config)

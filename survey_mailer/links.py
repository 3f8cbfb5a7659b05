"""All link signing: one salt per purpose, a list of keys for rotation, an expiry.

A token carries one delivery id. It is signed with the newest key and checked against
every key, so rotating keys (append a new one, drop the oldest later) breaks no link.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from .errors import BadLink, LinkExpired

PURPOSES = ("score", "unsubscribe", "beacon", "seen")


class Links:
    """Sign and check delivery tokens, and build the public URLs that carry them."""

    def __init__(self, secret_keys: list[str], base_url: str, max_age_days: int = 180):
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        self.base_url = base_url.rstrip("/")
        self.max_age = max_age_days * 86400
        self._signers = {
            purpose: TimestampSigner(secret_keys, salt=f"survey-mailer.{purpose}")
            for purpose in PURPOSES
        }

    def token(self, purpose: str, delivery_id: int) -> str:
        """Sign a delivery id for one purpose."""
        return self._signers[purpose].sign(str(delivery_id)).decode("ascii")

    def delivery_id(self, purpose: str, token: str) -> int:
        """Return the delivery id a token carries, or raise BadLink / LinkExpired."""
        try:
            value = self._signers[purpose].unsign(token, max_age=self.max_age)
        except SignatureExpired as e:
            raise LinkExpired("this link has expired", date_signed=e.date_signed) from e
        except BadSignature as e:
            raise BadLink("this link is not valid") from e
        try:
            return int(value)
        except ValueError as e:  # a valid signature over something we never signed
            raise BadLink("this link is not valid") from e

    def score_url(self, token: str, score: int | str) -> str:
        return f"{self.base_url}/r/{token}/{score}"

    def view_url(self, token: str) -> str:
        """The web version of the email: the message's first link, never a score (SPEC 7)."""
        return f"{self.base_url}/v/{token}"

    def honeypot_url(self, token: str) -> str:
        return f"{self.base_url}/r/{token}/hp"

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.base_url}/unsubscribe/{token}"


def from_config(config) -> Links:
    """Build the Links of the configured keys, base URL and expiry."""
    return Links(config.secret_keys, config["SURVEY_BASE_URL"],
                 config["SURVEY_LINK_MAX_AGE_DAYS"])

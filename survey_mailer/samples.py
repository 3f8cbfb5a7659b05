"""Test emails: "send me a test" sends a campaign's message to a staff member, marked as a
test, through the configured backend. It is no delivery: its links name delivery 0, so a
click on one shows a page saying so and records nothing, and nothing counts anywhere."""

from __future__ import annotations

import secrets

import sqlite_utils

from . import campaigns
from .addresses import valid_email
from .backends import Envelope, get_backend
from .compose import Composer, subject_for
from .config import Config
from .errors import SurveyError
from .links import from_config as links_from_config

TEST_DELIVERY = 0


def send_test(db: sqlite_utils.Database, config: Config, campaign_id: int, recipient: str,
              language: str) -> None:
    """Send the campaign's email in `language` to `recipient`, with "[Test]" before the
    subject; raise SurveyError when it cannot be built or handed over."""
    if not valid_email(recipient):
        raise SurveyError(f'"{recipient}" is not an email address')
    campaign = campaigns.ready(db, config, campaign_id)
    campaign[f"subject_{language}"] = f"[Test] {subject_for(campaign, language)}"
    message = Composer(campaign, links_from_config(config)).compose(
        TEST_DELIVERY, recipient, "", language)
    envelope = Envelope(sender=campaign["sender"], recipient=recipient,
                        key=f"c{campaign_id}-test-{secrets.token_hex(4)}",
                        campaign_id=campaign_id, delivery_id=TEST_DELIVERY)
    backend = get_backend(config)
    try:
        backend.send(envelope, message)
    except Exception as e:  # any backend's failure: say it, send nothing more
        raise SurveyError(f"the test could not be sent: {e}") from e
    finally:
        backend.close()

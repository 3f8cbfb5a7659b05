"""A campaign's look: its logo (a PNG or JPEG, in the email header and on the landing
pages) and its accent colour (a line above the email's card, the pages' buttons and links).

The accent must be dark enough for white text on it (WCAG AA, 4.5:1), since the landing
pages' buttons are white on the accent; the eleven score colours never change.
"""

from __future__ import annotations

import hashlib
import re

import sqlite_utils

from .clock import now
from .db import write
from .errors import NotFound, SurveyError

MAX_LOGO = 200 * 1024  # bytes: an email's header image, not a poster
KINDS = {b"\x89PNG\r\n\x1a\n": ("image/png", "png"), b"\xff\xd8\xff": ("image/jpeg", "jpg")}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}
HEX_RE = re.compile(r"^#[0-9a-f]{6}$")
MIN_CONTRAST = 4.5


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_with_white(hex_colour: str) -> float:
    """WCAG 2.1's contrast ratio of white text on this colour."""
    return 1.05 / (_luminance(hex_colour) + 0.05)


def check_accent(value: str | None) -> str:
    """Return an accent as #rrggbb ('' for the default), or raise SurveyError saying why not."""
    value = (value or "").strip().lower()
    if not value:
        return ""
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        value = "#" + "".join(c * 2 for c in value[1:])
    if not HEX_RE.match(value):
        raise SurveyError(f'accent colour "{value[:20]}" is not a colour like #1a7f37')
    ratio = contrast_with_white(value)
    if ratio < MIN_CONTRAST:
        raise SurveyError(f"accent colour {value} is too light: white text on it has a "
                          f"contrast of {ratio:.1f}:1, and buttons need {MIN_CONTRAST}:1 "
                          f"(WCAG AA); choose a darker colour")
    return value


def set_logo(db: sqlite_utils.Database, campaign_id: int, data: bytes) -> str:
    """Keep a campaign's logo (replacing one before); return its digest."""
    kind = next((k for magic, k in KINDS.items() if data.startswith(magic)), None)
    if kind is None:
        raise SurveyError("the logo is not a PNG or JPEG image")
    if len(data) > MAX_LOGO:
        raise SurveyError(f"the logo is {len(data) // 1024} KB: keep it under "
                          f"{MAX_LOGO // 1024} KB, an email downloads it for every reader")
    digest = hashlib.sha256(data).hexdigest()[:16]
    with write(db) as conn:
        if conn.execute("SELECT 1 FROM campaigns WHERE id = ?", [campaign_id]).fetchone() \
                is None:
            raise NotFound("campaign", campaign_id)
        conn.execute(
            "INSERT INTO campaign_logos (campaign_id, content_type, data, digest, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign_id) DO UPDATE SET"
            " content_type = excluded.content_type, data = excluded.data,"
            " digest = excluded.digest, created_at = excluded.created_at",
            [campaign_id, kind[0], data, digest, now()])
    return digest


def remove_logo(db: sqlite_utils.Database, campaign_id: int) -> None:
    with write(db) as conn:
        conn.execute("DELETE FROM campaign_logos WHERE campaign_id = ?", [campaign_id])


def path(campaign_id: int, digest: str | None, content_type: str | None) -> str | None:
    """The logo's path under SURVEY_BASE_URL (it changes with the image), or None."""
    return f"/logo/{campaign_id}/{digest}.{EXTENSIONS[content_type]}" if digest else None


def logo_path(db: sqlite_utils.Database, campaign_id: int) -> str | None:
    """The path of a campaign's logo, or None."""
    row = db.execute("SELECT digest, content_type FROM campaign_logos WHERE campaign_id = ?",
                     [campaign_id]).fetchone()
    return path(campaign_id, *row) if row else None


def logo(db: sqlite_utils.Database, campaign_id: int, digest: str) -> tuple[str, bytes]:
    """Return (content type, bytes) of a campaign's logo with this digest, or NotFound."""
    row = db.execute("SELECT content_type, data FROM campaign_logos WHERE campaign_id = ?"
                     " AND digest = ?", [campaign_id, digest]).fetchone()
    if row is None:
        raise NotFound("logo", campaign_id)
    return row[0], row[1]

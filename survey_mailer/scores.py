"""The NPS scale: scores 0-10, their segments, and when a response counts.

Every rule about scores is written here once: what a score is (ASCII 0 to 10, nothing
else), the thresholds of the three segments, and the SQL conditions other modules use.
"""

from __future__ import annotations

SCORES = range(11)
DETRACTOR_MAX = 6  # 0-6: detractors
PASSIVE_MAX = 8  # 7-8: passives; 9-10: promoters
SEGMENTS = ("detractor", "passive", "promoter")
POLICIES = ("balanced", "strict")
_TEXT = {str(n): n for n in SCORES}  # exactly "0".."10": never "01", "٥", "５" or "²"


def parse(text: str) -> int | None:
    """Return the score written in text, or None unless it is exactly "0" to "10" in ASCII."""
    return _TEXT.get(text)


def segment(score: int) -> str:
    """Return detractor (0-6), passive (7-8) or promoter (9-10)."""
    return "detractor" if score <= DETRACTOR_MAX else (
        "passive" if score <= PASSIVE_MAX else "promoter")


def segment_of_mean(mean: float) -> str:
    """Return the segment of a mean score: below 7 detractor, below 9 passive, else promoter.

    An account's score is a mean (SPEC 13): 6.5 is below every passive's 7, so detractor.
    """
    return "detractor" if mean < DETRACTOR_MAX + 1 else (
        "passive" if mean < PASSIVE_MAX + 1 else "promoter")


def in_segment_sql(name: str, alias: str = "r") -> str:
    """Return the SQL condition of a response in one segment."""
    if name == "detractor":
        return f"{alias}.score <= {DETRACTOR_MAX}"
    if name == "promoter":
        return f"{alias}.score > {PASSIVE_MAX}"
    if name == "passive":
        return f"{alias}.score BETWEEN {DETRACTOR_MAX + 1} AND {PASSIVE_MAX}"
    raise ValueError(f"unknown segment {name!r}")


DETRACTOR_SQL = in_segment_sql("detractor")
PROMOTER_SQL = in_segment_sql("promoter")


def counted_sql(policy: str, alias: str = "r") -> str:
    """Return the SQL condition under which a response counts in the NPS.

    `strict` counts only responses a person confirmed; `balanced` also counts those that
    nothing flagged as automated and whose landing page was shown in a visible browser tab
    (SPEC 7): a bare fetch of a score link is no vote.
    """
    if policy == "strict":
        return f"{alias}.confirmed = 1"
    return f"({alias}.confirmed = 1 OR ({alias}.automated = 0 AND {alias}.seen = 1))"


def filtered_sql(alias: str = "r") -> str:
    """Return the SQL condition of a filtered response: machine traffic, under any policy.

    Unconfirmed, and flagged as automated or never shown in a browser tab (a bare fetch).
    Under `balanced` that is exactly what does not count; `strict` also leaves out seen,
    unconfirmed clicks, which wait for a person's touch rather than being filtered. The
    same text as the partial index responses_filtered (m019), so reports use it.
    """
    return f"({alias}.confirmed = 0 AND ({alias}.automated = 1 OR {alias}.seen = 0))"

"""Signed links: one salt per purpose, key rotation, expiry checked first."""

import pytest
from itsdangerous import timed

from survey_mailer.errors import BadLink, LinkExpired
from survey_mailer.links import Links


def make(keys=("old-key", "new-key"), days=180):
    return Links(list(keys), "https://s.example/", days)


def test_round_trip_and_urls():
    links = make()
    token = links.token("score", 42)
    assert links.delivery_id("score", token) == 42
    assert links.score_url(token, 7) == f"https://s.example/r/{token}/7"
    assert links.unsubscribe_url(token) == f"https://s.example/unsubscribe/{token}"


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],  # signature changed
    lambda t: "43" + t[t.index("."):],                  # payload changed
    lambda t: t[:10],                                   # cut short
    lambda t: "garbage",
])
def test_tampered_tokens_are_rejected(mutate):
    links = make()
    with pytest.raises(BadLink):
        links.delivery_id("score", mutate(links.token("score", 42)))


def test_salt_per_purpose():
    links = make()
    with pytest.raises(BadLink):
        links.delivery_id("unsubscribe", links.token("score", 42))
    assert links.token("score", 42) != links.token("unsubscribe", 42)


def test_key_rotation_keeps_old_links_working():
    old = Links(["old-key"], "https://s.example")
    token = old.token("score", 5)
    rotated = make(("old-key", "new-key"))
    assert rotated.delivery_id("score", token) == 5
    assert rotated.token("score", 5) != token  # the newest key signs
    with pytest.raises(BadLink):
        make(("new-key",)).delivery_id("score", token)  # old key dropped: link dies


def test_expiry_with_frozen_time(monkeypatch):
    links = make(days=180)
    monkeypatch.setattr(timed.time, "time", lambda: 1_700_000_000)
    token = links.token("score", 9)
    monkeypatch.setattr(timed.time, "time", lambda: 1_700_000_000 + 180 * 86400)
    assert links.delivery_id("score", token) == 9
    monkeypatch.setattr(timed.time, "time", lambda: 1_700_000_000 + 180 * 86400 + 1)
    with pytest.raises(LinkExpired) as info:
        links.delivery_id("score", token)
    assert info.value.date_signed.timestamp() == 1_700_000_000


def test_expired_and_tampered_is_bad_not_expired(monkeypatch):
    links = make(days=1)
    monkeypatch.setattr(timed.time, "time", lambda: 1_700_000_000)
    token = links.token("score", 9)
    monkeypatch.setattr(timed.time, "time", lambda: 1_800_000_000)
    with pytest.raises(BadLink) as info:
        links.delivery_id("score", token[:-6] + "xxxxxx")
    assert not isinstance(info.value, LinkExpired)

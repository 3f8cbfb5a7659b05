import pytest

pytestmark = pytest.mark.browser


def test_health_in_chromium(live_server, page):
    page.goto(live_server + "/healthz")
    assert '"ok"' in page.content()

// Counting only humans (SPEC 7): two signals from the landing page, each sent at most once.
//
// "Seen": the page is shown in a visible, focused tab that no automation drives
// (navigator.webdriver is false). Sent at once when that holds on load, so a person who
// clicks and closes the tab still counts; otherwise when the tab becomes visible or gains
// focus. A fetch that never renders the page, or a sandbox that renders it in the
// background or under automation, never sends it.
//
// "Human": a real pointer, touch or key event. Never the page load, never a timer, never
// an event a script dispatched (isTrusted is false for those).
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) {
    return;
  }

  function post(url, fields) {
    var body = new URLSearchParams(fields);
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) {
      return;
    }
    fetch(url, { method: "POST", body: body, keepalive: true, credentials: "same-origin" })
      .catch(function () {});  // a lost beacon leaves the response as it was: no retry loop
  }

  var seenUrl = script.getAttribute("data-seen");
  var score = script.getAttribute("data-score");
  if (seenUrl && score) {
    var seen = false;
    var checkSeen = function () {
      if (seen || navigator.webdriver || document.visibilityState !== "visible" ||
          !document.hasFocus()) {
        return;
      }
      seen = true;
      document.removeEventListener("visibilitychange", checkSeen);
      window.removeEventListener("focus", checkSeen);
      post(seenUrl, { score: score });
    };
    document.addEventListener("visibilitychange", checkSeen);
    window.addEventListener("focus", checkSeen);
    checkSeen();
  }

  var beaconUrl = script.getAttribute("data-beacon");
  var events = ["pointerdown", "touchstart", "keydown"];
  var sent = false;

  function human(event) {
    if (sent || !event.isTrusted) {
      return;
    }
    sent = true;
    events.forEach(function (name) {
      document.removeEventListener(name, human, true);
    });
    post(beaconUrl, { event: event.type });
  }

  if (beaconUrl) {
    events.forEach(function (name) {
      document.addEventListener(name, human, { capture: true, passive: true });
    });
  }
})();

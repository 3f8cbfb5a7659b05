// Human confirmation (SPEC 7): tell the server once that a person is on this page.
// Only a real pointer, touch or key event sends the beacon: never the page load, never a
// timer, never an event a script dispatched (isTrusted is false for those). Scanners that
// run JavaScript load the page and leave without input, so their click stays unconfirmed.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.getAttribute("data-beacon");
  if (!url) {
    return;
  }
  var events = ["pointerdown", "touchstart", "keydown"];
  var sent = false;

  function send(event) {
    if (sent || !event.isTrusted) {
      return;
    }
    sent = true;
    events.forEach(function (name) {
      document.removeEventListener(name, send, true);
    });
    var body = new URLSearchParams({ event: event.type });
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) {
      return;
    }
    fetch(url, { method: "POST", body: body, keepalive: true, credentials: "same-origin" })
      .catch(function () {});  // a lost beacon leaves the response unconfirmed: no retry loop
  }

  events.forEach(function (name) {
    document.addEventListener(name, send, { capture: true, passive: true });
  });
})();

// The campaign form's live audience count: how many contacts the lines reach right now.
(function () {
  "use strict";
  var field = document.getElementById("segment");
  var out = document.getElementById("audience-count");
  if (!field || !out || !window.fetch) {
    return;
  }
  var timer = null;

  function count() {
    var url = out.getAttribute("data-url") + "?" + new URLSearchParams({ segment: field.value });
    fetch(url, { credentials: "same-origin" })
      .then(function (reply) { return reply.json(); })
      .then(function (data) {
        out.textContent = data.error ? data.error :
          data.count + (data.count === 1 ? " contact" : " contacts") + " would get it now";
      })
      .catch(function () { out.textContent = ""; });
  }

  field.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(count, 300);
  });
  count();
})();

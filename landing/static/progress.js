// A campaign's live progress: asks for its figures every two seconds while it sends.
(function () {
  "use strict";
  var panel = document.getElementById("progress");
  if (!panel || !window.fetch) {
    return;
  }
  var bar = panel.querySelector("progress");
  var status = document.getElementById("status");

  function show(data) {
    panel.querySelectorAll("[data-key]").forEach(function (node) {
      var value = data[node.getAttribute("data-key")];
      node.textContent = value === null ? "—" : value;
    });
    bar.max = data.total || 1;
    bar.value = data.sent;
    status.textContent = data.status;
    status.className = "status " + data.status;
  }

  function poll() {
    fetch(panel.getAttribute("data-url"), { credentials: "same-origin" })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (data) {
        if (data) {
          show(data);
        }
        if (!data || data.remaining > 0 || data.status === "scheduled" ||
            data.status === "recurring") {
          setTimeout(poll, 2000);
        }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  setTimeout(poll, 2000);
})();

// The landing page follows the chosen score (SPEC 1): a passive who picks 10 sees the
// testimonial question and fields at once. Each score's label names the segment it opens
// (data-shows, set by the server, which owns the thresholds); the form's action moves to
// that segment's page, so sending it saves the answer there. Without JavaScript the server
// does the same after sending.
(function () {
  "use strict";
  var form = document.getElementById("answer");
  if (!form) {
    return;
  }

  function show(segment) {
    document.querySelectorAll("[data-segment]").forEach(function (part) {
      var on = part.getAttribute("data-segment") === segment;
      part.hidden = !on;
      if (part.tagName === "FIELDSET") {
        part.disabled = !on;  // hidden fields are not sent
      }
    });
    document.querySelectorAll("[data-text-" + segment + "]").forEach(function (element) {
      element.textContent = element.getAttribute("data-text-" + segment);
    });
    form.setAttribute("action", form.getAttribute("data-action-" + segment));
    document.title = form.getAttribute("data-title-" + segment);
  }

  form.addEventListener("change", function (event) {
    var label = event.target.name === "score" && event.target.closest("[data-shows]");
    var segment = label && label.getAttribute("data-shows");
    if (segment) {
      show(segment);
    }
  });
})();

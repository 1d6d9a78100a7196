// The show-once pages (a new API key, a generated password): a Copy button beside the secret.
// Progressive only: without it (or without the clipboard) the field is there to select and copy.
"use strict";
(function () {
  // A show-once form sent twice (a double click) would show its secret only to the first
  // answer, which the browser drops: send it once.
  document.querySelectorAll("form[data-send-once]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
    });
  });
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    field.addEventListener("focus", function () { field.select(); });
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(
        function () { button.textContent = "Copied"; },
        function () { field.focus(); }
      );
    });
  });
})();

// dialback's own script: progressive touches only; every page works without it.
"use strict";
(function () {
  // <input type="checkbox" data-select-all="name">: checks or clears every box named name.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[data-select-all]")) return;
    var name = box.getAttribute("data-select-all");
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) {
      b.checked = box.checked;
    });
  });
})();

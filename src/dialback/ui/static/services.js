// The capacity week grid's conveniences (the grid works without them): copy the value of the
// cell last focused to its whole row, its whole column, or its column's open cells.
"use strict";
(function () {
  var grid = document.querySelector("table.capgrid.edit");
  if (!grid) return;
  var last = null;
  grid.addEventListener("focusin", function (event) {
    if (event.target.matches("input")) last = event.target;
  });
  var bar = document.createElement("div");
  bar.className = "capfill";
  var said = document.createElement("span");
  said.setAttribute("role", "status");
  said.className = "hint";
  function fill(scope) {
    if (!last) {
      said.textContent = "Focus a cell first.";
      return;
    }
    var cell = last.closest("td");
    var row = cell.parentElement;
    var column = Array.prototype.indexOf.call(row.children, cell) + 1;
    var inputs = scope === "row"
      ? row.querySelectorAll("td input")
      : grid.querySelectorAll("tbody tr > :nth-child(" + column + ") input");
    var n = 0;
    inputs.forEach(function (input) {
      if (scope === "open" && !input.closest("td").classList.contains("open")) return;
      input.value = last.value;
      n += 1;
    });
    said.textContent = "Copied " + (last.value || "empty") + " to " + n + " cells (not saved yet).";
  }
  [["row", "Copy to its row"], ["column", "Copy to its column"],
   ["open", "Copy to its column's open cells"]].forEach(function (spec) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = spec[1];
    button.addEventListener("click", function () { fill(spec[0]); });
    bar.appendChild(button);
  });
  var lead = document.createElement("span");
  lead.textContent = "The focused cell's value:";
  bar.insertBefore(lead, bar.firstChild);
  bar.appendChild(said);
  grid.closest(".table-wrap").before(bar);
})();

// The callbacks list: its counts per state refreshed in place (the page works without this).
"use strict";
(function () {
  var list = document.querySelector("ul.cb-counts[data-refresh]");
  if (!list || !window.fetch || !window.DOMParser) return;
  var url = list.getAttribute("data-refresh");
  var seconds = Number(list.getAttribute("data-refresh-seconds")) || 15;
  function refresh() {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html")
          .querySelector("ul.cb-counts");
        if (fresh) list.replaceChildren.apply(list, Array.from(fresh.children));
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();

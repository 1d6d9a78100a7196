// The Health page, live: polls /ui/health.json and updates each [data-cell] in place (the
// same nodes, so nothing moves). Without this script the page shows the values it loaded.
"use strict";
(function () {
  var root = document.querySelector("[data-health-url]");
  if (!root) return;
  var url = root.getAttribute("data-health-url");
  var every = 1000 * (parseFloat(root.getAttribute("data-poll-seconds")) || 5);
  // Polling is not the operator's activity: after the session's idle time without input the
  // page stops asking, so an unattended tab lets the session end as any other page would.
  var idle = 1000 * (parseFloat(root.getAttribute("data-idle-seconds")) || 1200);
  var live = root.querySelector("[data-live]");
  var lastInput = Date.now();
  var timer = null;

  ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () {
      var wasPaused = timer === null;
      lastInput = Date.now();
      if (wasPaused && !document.hidden) schedule(0);
    }, { passive: true });
  });

  function say(text) {
    if (live && live.textContent !== text) live.textContent = text;
  }

  function setTime(el, cell) {
    var time = el.querySelector("time");
    if (!cell.utc) {
      if (time || el.textContent !== "—") {
        el.textContent = "";
        var dash = document.createElement("span");
        dash.className = "muted";
        dash.textContent = "—";
        el.appendChild(dash);
      }
      return;
    }
    if (!time) {
      el.textContent = "";
      time = document.createElement("time");
      el.appendChild(time);
    }
    time.setAttribute("datetime", cell.utc);
    time.setAttribute("title", cell.utc + " UTC");
    if (time.textContent !== cell.text) time.textContent = cell.text;
  }

  function apply(cells) {
    root.querySelectorAll("[data-cell]").forEach(function (el) {
      var cell = cells[el.getAttribute("data-cell")];
      if (!cell) return;
      if ("ts" in cell) {
        setTime(el, cell);
        return;
      }
      if ("state" in cell) el.className = "badge h-" + cell.state;
      if (el.textContent !== cell.text) el.textContent = cell.text;
    });
  }

  function poll() {
    timer = null;
    if (document.hidden) return; // resumed by visibilitychange
    if (Date.now() - lastInput > idle) {
      say("(paused: no activity here; move the mouse or press a key to resume)");
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        var type = r.headers.get("content-type") || "";
        if (r.redirected || type.indexOf("application/json") !== 0) {
          throw new Error("signed out");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (body) {
        apply(body.cells);
        say("(live, every " + every / 1000 + " s)");
        schedule(every);
      })
      .catch(function (err) {
        if (err.message === "signed out") {
          say("(not updating: your session has ended; reload the page to sign in)");
          return;
        }
        say("(could not update: " + err.message + "; retrying)");
        schedule(every);
      });
  }

  function schedule(ms) {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && timer === null) schedule(0);
  });
  say("(live, every " + every / 1000 + " s)");
  schedule(every);
})();

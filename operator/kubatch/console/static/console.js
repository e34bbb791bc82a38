// kubatch console: live updates by server-sent events; the server renders every fragment
// (escaped), the browser only swaps the #live element and appends log lines as text.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  if (!live) { return; }
  var kind = live.getAttribute("data-live") || "";

  function setConn(ok) {
    if (conn) { conn.textContent = ok ? "live" : "reconnecting"; conn.className = ok ? "conn" : "conn off"; }
  }

  // -- the log of an attempt, followed while it runs --------------------------------------
  var logEl = document.getElementById("log");
  if (logEl && logEl.getAttribute("data-stream")) {
    var state = document.getElementById("log-state");
    var src = new EventSource(logEl.getAttribute("data-stream"));
    src.addEventListener("line", function (ev) {
      logEl.appendChild(document.createTextNode(JSON.parse(ev.data) + "\n"));
    });
    src.addEventListener("end", function () { src.close(); if (state) { state.textContent = "complete"; } });
    src.addEventListener("fail", function (ev) {
      src.close();
      if (state) { state.textContent = "error: " + JSON.parse(ev.data); }
    });
    return;
  }
  if (!kind) { return; }

  // -- pages that follow the cluster ---------------------------------------------------------
  var busy = false, again = false, last = 0;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true; again = false; last = Date.now();
    fetch(window.location.href, { headers: { "X-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          live.setAttribute("data-refreshed", String(Date.now()));
          window.__swaps = (window.__swaps || 0) + 1;
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { setTimeout(refresh, 1000); } });
  }
  function wanted(keys) {
    if (kind === "overview" || kind === "jobs") { return true; }
    if (kind.indexOf("job:") === 0) {
      var want = "job/" + kind.slice(4);
      for (var i = 0; i < keys.length; i++) { if (keys[i] === want) { return true; } }
    }
    return false;
  }
  var since = live.getAttribute("data-version") || "";
  var events = new EventSource("/events?since=" + encodeURIComponent(since));
  events.onopen = function () { setConn(true); };
  events.onerror = function () { setConn(false); };
  events.addEventListener("change", function (ev) {
    var data = JSON.parse(ev.data);
    if (data.all || wanted(data.keys || [])) {
      var wait = Math.max(0, 1000 - (Date.now() - last));
      setTimeout(refresh, wait);
    }
  });
})();

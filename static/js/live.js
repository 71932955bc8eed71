// Live pages (docs/web.md#live): one websocket to /ws/updates/ per page, reconnecting with backoff.
//
// A page marks the regions that change with `data-live="<name>"` and the event types that change them with
// `data-live-on="group.updated order.updated"`. When such an event arrives the region is fetched again from
// the same URL with `?partial=<name>` (the server renders only that region, from the same view and template)
// and swapped in. After a reconnect every region is fetched (resync: events sent while offline are lost).
// Pages may also listen: document.addEventListener("live:event", e => e.detail /* {type, data} */).
// Times: <time datetime="ISO" data-format="datetime|date|time|ago"> are shown in the browser's time zone.
(function () {
  "use strict";
  var indicator = document.getElementById("conn");
  var regions = function () { return Array.prototype.slice.call(document.querySelectorAll("[data-live]")); };
  var pending = {};       // region name -> timer
  var inflight = {};      // region name -> true while fetching; a second request waits for the first
  var again = {};
  var failures = {};      // region name -> failed fetches in a row
  var DEBOUNCE_MS = 120;  // an update burst (fill + group + order) becomes one fetch per region
  var RETRY_MS = 2000;    // a failed fetch is tried again (a few times), or the region would stay stale

  function setState(state, title) {
    if (!indicator) return;
    indicator.setAttribute("data-state", state);
    indicator.querySelector(".label").textContent = { live: "Live", connecting: "Connecting…", offline: "Offline" }[state];
    indicator.title = title || "";
  }

  function partialUrl(name) {
    var url = new URL(window.location.href);
    url.searchParams.set("partial", name);
    return url.toString();
  }

  function refresh(name) {
    if (inflight[name]) { again[name] = true; return; }
    var el = document.querySelector('[data-live="' + name + '"]');
    if (!el) return;
    inflight[name] = true;
    fetch(partialUrl(name), { credentials: "same-origin", headers: { "X-Requested-With": "live" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403 || r.redirected) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) throw new Error("region not fetched");
        failures[name] = 0;
        var active = document.activeElement;
        if (active && el.contains(active) && /INPUT|SELECT|TEXTAREA/.test(active.tagName)) return; // don't clobber typing
        el.innerHTML = html;
        formatTimes(el);
        el.dispatchEvent(new CustomEvent("live:swapped", { bubbles: true, detail: name }));
      })
      .catch(function () {
        failures[name] = (failures[name] || 0) + 1;
        if (failures[name] <= 5) setTimeout(function () { refresh(name); }, RETRY_MS * failures[name]);
      })
      .then(function () {
        inflight[name] = false;
        if (again[name]) { again[name] = false; schedule(name); }
      });
  }

  function schedule(name) {
    clearTimeout(pending[name]);
    pending[name] = setTimeout(function () { refresh(name); }, DEBOUNCE_MS);
  }

  function onEvent(evt) {
    document.dispatchEvent(new CustomEvent("live:event", { detail: evt }));
    regions().forEach(function (el) {
      var on = (el.getAttribute("data-live-on") || "").split(/\s+/);
      if (on.indexOf(evt.type) !== -1 || on.indexOf("*") !== -1) schedule(el.getAttribute("data-live"));
    });
  }

  function resync() { regions().forEach(function (el) { schedule(el.getAttribute("data-live")); }); }

  var attempt = 0, socket = null, everConnected = false;
  function connect() {
    if (!("WebSocket" in window)) { setState("offline", "This browser has no websocket"); return; }
    setState("connecting");
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/updates/");
    socket.onopen = function () {
      setState("live", "Updates arrive as they happen");
      if (everConnected) resync();  // events sent while we were away are lost: fetch the regions again
      everConnected = true;
      attempt = 0;
    };
    socket.onmessage = function (msg) {
      var evt;
      try { evt = JSON.parse(msg.data); } catch (e) { return; }
      if (evt && evt.type && evt.type !== "hello") onEvent(evt);
    };
    socket.onclose = function (e) {
      if (e.code === 4401) { setState("offline", "Not logged in"); return; }
      setState("offline", "Reconnecting…");
      // backoff: 0.5 s, 1 s, 2 s, ... capped at 15 s, with jitter so that many tabs don't reconnect together
      var delay = Math.min(15000, 500 * Math.pow(2, attempt++)) * (0.75 + Math.random() * 0.5);
      setTimeout(connect, delay);
    };
  }

  var fmt = {
    datetime: { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" },
    date: { year: "numeric", month: "short", day: "2-digit" },
    time: { hour: "2-digit", minute: "2-digit", second: "2-digit" }
  };
  function ago(d) {
    var s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function formatTimes(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll("time[datetime]"), function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      var kind = t.getAttribute("data-format") || "datetime";
      t.textContent = kind === "ago" ? ago(d) : d.toLocaleString(undefined, fmt[kind] || fmt.datetime);
      if (!t.title) t.title = d.toString();
    });
  }

  window.Live = { refresh: refresh, resync: resync, formatTimes: formatTimes };
  formatTimes(document);
  if (document.body.getAttribute("data-live-socket") === "on") connect();
})();

// The group page's candle chart (docs/web.md#group): candles with the group's price lines (entry, legs,
// take-profits, average, stop, trailing stop) and fill markers, from /positions/<id>/candles. The data is
// fetched again when a group.updated or order.updated event about this group arrives.
(function () {
  "use strict";
  var el = document.getElementById("group-chart");
  if (!el || !window.LightweightCharts) return;
  var note = document.getElementById("group-chart-note");
  var groupId = el.getAttribute("data-group");
  var chart = null, series = null, lines = [];
  var STYLES = {  // kind -> colour (a theme variable or a fixed colour) and line style
    entry: { color: "--link", style: 0, width: 2 },
    leg: { color: "--muted", style: 2, width: 1 },
    tp: { color: "--good", style: 1, width: 1 },
    avg: { color: "#d97706", style: 0, width: 2 },
    stop: { color: "--bad", style: 0, width: 2 },
    trailing: { color: "#8250df", style: 2, width: 2 }
  };
  function colour(value) { return value.indexOf("--") === 0 ? Charts.css(value) : value; }

  function showNote(text) {
    note.textContent = text || "";
    note.hidden = !text;
  }

  function draw(data) {
    if (!data.candles.length) {
      showNote(data.note || "No candles for this pair and timeframe.");
      el.hidden = true;
      return;
    }
    el.hidden = false;
    showNote(data.note || (data.source === "exchange" ? "Candles from the exchange (none stored for this period)." : ""));
    if (!chart) {
      chart = Charts.create(el, { localization: { priceFormatter: function (p) { return p.toLocaleString(undefined, { maximumSignificantDigits: 8 }); } } });
      series = chart.addCandlestickSeries({ borderVisible: false });
    }
    series.applyOptions({  // the theme's colours (a theme change reloads)
      upColor: Charts.css("--good"), downColor: Charts.css("--bad"),
      wickUpColor: Charts.css("--good"), wickDownColor: Charts.css("--bad")
    });
    series.setData(data.candles);
    lines.forEach(function (line) { series.removePriceLine(line); });
    lines = data.lines.map(function (line) {
      var style = STYLES[line.kind] || STYLES.leg;
      return series.createPriceLine({
        price: line.price, color: colour(style.color), lineWidth: style.width, lineStyle: style.style,
        axisLabelVisible: line.kind !== "leg", title: line.title
      });
    });
    series.setMarkers(data.markers.map(function (m) {
      return { time: m.time, position: m.position, shape: m.shape, text: m.text,
               color: m.kind === "buy" ? Charts.css("--good") : Charts.css("--bad") };
    }));
    if (!el.dataset.fitted) {  // first draw: the group's life (the candles before it stay a scroll away)
      if (data.focus) chart.timeScale().setVisibleRange(data.focus); else chart.timeScale().fitContent();
      el.dataset.fitted = "1";
    }
  }

  var busy = false, again = false;
  function load() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(el.getAttribute("data-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)); })
      .then(draw)
      .catch(function () { showNote("The chart's data could not be loaded; it is fetched again on the next update."); })
      .then(function () { busy = false; if (again) { again = false; schedule(); } });
  }
  var timer = null;
  function schedule() { clearTimeout(timer); timer = setTimeout(load, 250); }

  document.addEventListener("live:event", function (e) {
    var evt = e.detail || {}, data = evt.data || {};
    if ((evt.type === "group.updated" && data.id === groupId) || (evt.type === "order.updated" && data.group_id === groupId)) schedule();
  });
  document.addEventListener("themechange", function () { if (chart) load(); });
  load();
})();

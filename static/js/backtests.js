// Charts of the backtest pages (docs/web.md#backtests): a run's candles with its fills, its equity and
// drawdown, and two runs' equity side by side.
(function () {
  "use strict";
  function data(id) { var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }

  var run = data("chart-data");
  if (run) {
    var equityEl = document.getElementById("equity");
    var equity = Charts.create(equityEl);
    equity.addLineSeries({ color: Charts.css("--link"), lineWidth: 2 }).setData(run.equity.map(function (p) { return { time: p.time, value: p.marked }; }));
    equity.addLineSeries({ color: Charts.css("--good"), lineWidth: 1 }).setData(run.equity.map(function (p) { return { time: p.time, value: p.realized }; }));
    equity.timeScale().fitContent();
    var dd = Charts.create(document.getElementById("drawdown"));
    dd.addAreaSeries({ lineColor: Charts.css("--bad"), topColor: "rgba(207,34,46,0)", bottomColor: "rgba(207,34,46,.35)", lineWidth: 1 }).setData(run.drawdown);
    dd.timeScale().fitContent();
    var candlesEl = document.getElementById("candles");
    fetch(candlesEl.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (body) {
      if (!body.candles.length) { document.getElementById("candles-note").textContent = "The run's candles are no longer stored."; return; }
      var chart = Charts.create(candlesEl);
      var series = chart.addCandlestickSeries({ upColor: Charts.css("--good"), downColor: Charts.css("--bad"), borderVisible: false, wickUpColor: Charts.css("--good"), wickDownColor: Charts.css("--bad") });
      series.setData(body.candles);
      // A marker must sit on a candle's time: snap each fill to the candle holding it.
      var times = body.candles.map(function (c) { return c.time; });
      var markers = run.markers.map(function (m) {
        var lo = 0, hi = times.length - 1;
        while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (times[mid] <= m.time) lo = mid; else hi = mid - 1; }
        return Object.assign({}, m, { time: times[lo] });
      });
      series.setMarkers(markers);
      chart.timeScale().fitContent();
      if (body.thinned) document.getElementById("candles-note").textContent = "Long run: every few candles are shown; fills sit on the nearest one.";
    });
  }

  var pair = data("compare-data");
  if (pair) {
    var chart = Charts.create(document.getElementById("compare"));
    chart.addLineSeries({ color: Charts.css("--link"), lineWidth: 2, title: "A" }).setData(pair.a.map(function (p) { return { time: p.time, value: p.marked }; }));
    chart.addLineSeries({ color: "#d97706", lineWidth: 2, title: "B" }).setData(pair.b.map(function (p) { return { time: p.time, value: p.marked }; }));
    chart.timeScale().fitContent();
  }
})();

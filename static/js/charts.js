// Chart helpers on TradingView Lightweight Charts (static/vendor/lightweight-charts-*, docs/web.md#charts).
// Colours follow the page's theme; charts are redrawn when the theme changes.
(function () {
  "use strict";
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function themeOptions() {
    return {
      layout: { background: { type: "solid", color: css("--panel") }, textColor: css("--muted") },
      grid: { vertLines: { color: css("--line") }, horzLines: { color: css("--line") } },
      rightPriceScale: { borderColor: css("--line") },
      timeScale: { borderColor: css("--line"), timeVisible: true, secondsVisible: false }
    };
  }
  function create(el, options) {
    var chart = LightweightCharts.createChart(el, Object.assign({ autoSize: true }, themeOptions(), options || {}));
    document.addEventListener("themechange", function () { chart.applyOptions(themeOptions()); });
    return chart;
  }
  function sparkline(el, points) {
    var chart = create(el, {
      handleScroll: false, handleScale: false,
      rightPriceScale: { visible: false }, timeScale: { visible: false },
      grid: { vertLines: { visible: false }, horzLines: { visible: false } },
      crosshair: { vertLine: { visible: false }, horzLine: { visible: false } }
    });
    var last = points.length ? points[points.length - 1].value : 0;
    var series = chart.addAreaSeries({
      lineColor: last >= 0 ? css("--good") : css("--bad"),
      topColor: "rgba(46,160,67,.25)", bottomColor: "rgba(46,160,67,0)", lineWidth: 2,
      priceLineVisible: false, lastValueVisible: false
    });
    series.setData(points);
    chart.timeScale().fitContent();
    return chart;
  }
  window.Charts = { create: create, sparkline: sparkline, css: css };
})();

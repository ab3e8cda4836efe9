// Draws the spend chart from the JSON the page carries (#spend-data); again after htmx
// swaps the page in. Bands are cumulative (each group sits on the ones below it).
(function () {
  "use strict";
  var palette = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b45309", "#0e7490", "#be123c", "#4d7c0f", "#57534e"];
  var chart = null;

  function draw() {
    var data = document.getElementById("spend-data");
    var target = document.getElementById("spend-chart");
    if (chart) { chart.destroy(); chart = null; }
    if (!data || !target || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(data.textContent);
    var columns = [d.x];
    var series = [{}];
    // Draw the top band first so the lower ones paint over it.
    for (var i = d.names.length - 1; i >= 0; i--) {
      columns.push(d.stacked[i].map(Number));
      series.push({
        label: d.names[i],
        stroke: palette[i % palette.length],
        fill: palette[i % palette.length] + "55",
        value: function (u, v, si, idx) {
          if (v == null) { return "—"; }
          var band = d.names.length - si;           // series index -> group index
          var below = band > 0 ? Number(d.stacked[band - 1][idx]) : 0;
          return "$" + (v - below).toFixed(6) + " USD";
        }
      });
    }
    var width = Math.max(280, target.clientWidth || 600);
    chart = new uPlot({
      width: width,
      height: 300,
      series: series,
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return "$" + v; }); }, size: 70 }],
      scales: { x: { time: true } }
    }, columns, target);
    target.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("resize", function () { if (chart) { draw(); } });
})();

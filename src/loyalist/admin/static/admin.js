/* Loyalist staff console: charts from server-built ECharts options, small helpers. */
(function () {
  "use strict";
  var zh = (document.documentElement.lang || "").indexOf("zh") === 0;
  var tag = zh ? "zh-CN" : "en-US";

  function num(v) {
    if (v === null || v === undefined || isNaN(v)) return "—";
    if (zh && Math.abs(v) >= 10000) {
      return (Math.round(v / 100) / 100).toLocaleString(tag, { maximumFractionDigits: 2 }) + "万";
    }
    return Number(v).toLocaleString(tag, { maximumFractionDigits: 2 });
  }

  // Amounts in charts are yuan (the server divides fen by 100).
  function money(v) {
    if (v === null || v === undefined || isNaN(v)) return "—";
    if (zh && Math.abs(v) >= 10000) {
      return "¥" + (Math.round(v / 100) / 100).toLocaleString(tag, { maximumFractionDigits: 2 }) + "万";
    }
    return "¥" + Number(v).toLocaleString(tag, { minimumFractionDigits: 0, maximumFractionDigits: 2 });
  }

  // Shares (0..1) as percentages: the analytics section's retention heat map.
  function pct(v) {
    if (v === null || v === undefined || isNaN(v)) return "—";
    return (Number(v) * 100).toLocaleString(tag, { maximumFractionDigits: 1 }) + "%";
  }

  var formats = { money: money, num: num, pct: pct };

  function withFormatters(option, kind) {
    var f = formats[kind] || num;
    var axes = [].concat(option.yAxis || [], option.xAxis || []);
    axes.forEach(function (ax) {
      if (ax && ax.type === "value") {
        ax.axisLabel = Object.assign({}, ax.axisLabel || {}, { formatter: f });
      }
    });
    // A heat map's value is [x, y, value]: format the value.
    var tf = function (v) { return f(Array.isArray(v) ? v[v.length - 1] : v); };
    option.tooltip = Object.assign({}, option.tooltip || {}, { valueFormatter: tf });
    (option.series || []).forEach(function (s) {
      if (s.label && s.label.show && !s.label.formatter) {
        if (s.type === "heatmap") {
          s.label.formatter = function (p) { return f(p.value[2]); };
        } else if (s.type === "pie") {
          s.label.formatter = function (p) { return p.name + " " + p.percent + "%"; };
        } else {
          s.label.formatter = function (p) { return f(p.value); };
        }
      }
    });
    return option;
  }

  function initCharts(root) {
    if (typeof echarts === "undefined") return;
    (root || document).querySelectorAll("[data-echarts]").forEach(function (el) {
      if (echarts.getInstanceByDom(el)) return;
      var option = JSON.parse(el.getAttribute("data-echarts"));
      var chart = echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(withFormatters(option, el.getAttribute("data-format")));
      el.setAttribute("data-ready", "1");
    });
  }

  window.addEventListener("resize", function () {
    if (typeof echarts === "undefined") return;
    document.querySelectorAll("[data-echarts]").forEach(function (el) {
      var c = echarts.getInstanceByDom(el);
      if (c) c.resize();
    });
  });

  // Ask before forms marked data-confirm are sent.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var msg = form && form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // Close the user menu when clicking elsewhere.
  document.addEventListener("click", function (ev) {
    document.querySelectorAll("details.user[open]").forEach(function (d) {
      if (!d.contains(ev.target)) d.removeAttribute("open");
    });
  });

  document.addEventListener("DOMContentLoaded", function () { initCharts(document); });
  document.addEventListener("htmx:afterSwap", function (ev) { initCharts(ev.target); });
  window.loyalistCharts = { init: initCharts, money: money, num: num };
})();

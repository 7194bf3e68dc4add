// Closewise front end: charts from <script type="application/json" data-chart>, CSRF header on htmx requests.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  function renderCharts(root) {
    if (!window.Plotly) { return; }
    (root || document).querySelectorAll("script[data-chart]").forEach(function (node) {
      var target = document.getElementById(node.getAttribute("data-chart"));
      if (!target || target.dataset.rendered) { return; }
      var figure = JSON.parse(node.textContent);
      var layout = Object.assign({
        margin: { l: 56, r: 16, t: 24, b: 48 },
        font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1f2937" },
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", hovermode: "closest"
      }, figure.layout || {});
      window.Plotly.newPlot(target, figure.data || [], layout, { displaylogo: false, responsive: true,
        modeBarButtonsToRemove: ["lasso2d", "select2d"] });
      target.dataset.rendered = "1";
    });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) { event.detail.headers["X-CSRF-Token"] = token; }
  });
  // Show the one-line error a partial carries (4xx) instead of dropping it; 401 goes to the sign-in form.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && status !== 401) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) { renderCharts(event.target); });
  document.addEventListener("DOMContentLoaded", function () { renderCharts(document); });
  window.addEventListener("load", function () { renderCharts(document); });
})();

// trenches web UI: the few things the pages do in the browser. There is no inline
// script on the pages (their content security policy forbids it): data comes in
// <script type="application/json"> blocks, behaviour is bound here.
(function () {
  "use strict";

  // Charts: <script type="application/json" data-plot="ID"> holds a Plotly figure for
  // the element ID. A point whose customdata starts with a path of this server links
  // there (a problem's point to its patterns for that version).
  function drawPlots(root) {
    if (typeof Plotly === "undefined") return;
    root.querySelectorAll("script[data-plot]").forEach(function (block) {
      var target = document.getElementById(block.dataset.plot);
      if (!target || target.dataset.drawn) return;
      var figure = JSON.parse(block.textContent);
      target.dataset.drawn = "1";
      Plotly.newPlot(target, figure.data, figure.layout || {}, {
        displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"],
      }).then(function () {
        target.on("plotly_click", function (event) {
          var point = event.points && event.points[0];
          var link = point && point.customdata && point.customdata[0];
          if (typeof link === "string" && link.charAt(0) === "/" && link.charAt(1) !== "/") {
            window.location.assign(link);
          }
        });
      });
    });
  }

  // Select all: a checkbox with data-select-all="NAME" ticks every checkbox NAME.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll) return;
    document.querySelectorAll('input[type="checkbox"][name="' + box.dataset.selectAll + '"]')
      .forEach(function (other) { other.checked = box.checked; });
  });

  // Keyboard shortcuts: an element with data-shortcut="KEY" is clicked when KEY is
  // pressed outside a text field; within a list marked data-rows, the current row's
  // controls win, and j / k move between rows.
  function currentRow() {
    return document.querySelector("[data-rows] .current");
  }
  function moveRow(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("[data-rows] [data-row]"));
    if (!rows.length) return;
    var at = rows.indexOf(currentRow());
    var next = rows[Math.min(rows.length - 1, Math.max(0, at + step))];
    rows.forEach(function (r) { r.classList.remove("current"); });
    next.classList.add("current");
    next.focus();
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var inField = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (inField) return;
    if (event.key === "j") { moveRow(1); event.preventDefault(); return; }
    if (event.key === "k") { moveRow(-1); event.preventDefault(); return; }
    var scope = currentRow() || document;
    var control = scope.querySelector('[data-shortcut="' + CSS.escape(event.key) + '"]') ||
      document.querySelector('[data-shortcut="' + CSS.escape(event.key) + '"]:not([data-row] *)');
    if (control) { event.preventDefault(); control.focus(); control.click(); }
  });
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("[data-rows] [data-row]");
    if (!row) return;
    document.querySelectorAll("[data-rows] .current").forEach(function (r) { r.classList.remove("current"); });
    row.classList.add("current");
  });

  document.addEventListener("DOMContentLoaded", function () { drawPlots(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawPlots(event.target); });
})();

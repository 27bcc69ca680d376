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

  // --- The labelling queue (/queue) -------------------------------------------------
  // Its items are rows ([data-rows][data-queue] [data-row]). A <details data-opens-form>
  // (opened by its summary's shortcut) puts the focus in its form's first field, and
  // Escape closes it again. When an item is decided, its element is swapped for a note
  // marked data-decided, and the next item waiting becomes current.
  function queueRows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-queue] [data-row]"));
  }
  function makeCurrent(row, focus) {
    document.querySelectorAll("[data-rows] .current").forEach(function (r) { r.classList.remove("current"); });
    if (!row) return;
    row.classList.add("current");
    if (focus) row.focus();
  }
  function firstCurrent() {
    if (!document.querySelector("[data-queue]") || currentRow()) return;
    makeCurrent(queueRows()[0], false);
  }
  document.addEventListener("toggle", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLDetailsElement) || !box.hasAttribute("data-opens-form") || !box.open) return;
    var row = box.closest("[data-row]");
    if (row) {
      row.querySelectorAll("details[data-opens-form][open]").forEach(function (other) {
        if (other !== box) other.open = false;
      });
    }
    var field = box.querySelector("select, input, textarea");
    if (field) field.focus();
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var box = event.target.closest && event.target.closest("details[data-opens-form][open]");
    if (!box) return;
    box.open = false;
    var row = box.closest("[data-row]");
    if (row) row.focus();
  });
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("[data-decided]:not([data-moved-on])").forEach(function (done) {
      done.setAttribute("data-moved-on", "1");
      var rows = queueRows();
      var next = rows.filter(function (r) {
        return done.compareDocumentPosition(r) & Node.DOCUMENT_POSITION_FOLLOWING;
      })[0] || rows[rows.length - 1];
      if (next) makeCurrent(next, true);
      else done.focus();
    });
    firstCurrent();
  });
  document.addEventListener("DOMContentLoaded", firstCurrent);

  // --- Charts in htmx answers (the data quality report) -------------------------------
  // htmx drops <script> blocks from what it swaps in (allowScriptTags is off), so a
  // fragment passes its figure in a data-figure attribute; it becomes the
  // <script type="application/json" data-plot> block drawPlots reads.
  function liftFigures(root) {
    root.querySelectorAll("[data-figure]").forEach(function (target) {
      var block = document.createElement("script");
      block.type = "application/json";
      block.dataset.plot = target.id;
      block.textContent = target.getAttribute("data-figure");
      target.removeAttribute("data-figure");
      target.after(block);
    });
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    liftFigures(event.target);
    drawPlots(event.target);
  });
  document.addEventListener("DOMContentLoaded", function () { liftFigures(document); });

  document.addEventListener("DOMContentLoaded", function () { drawPlots(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawPlots(event.target); });
})();

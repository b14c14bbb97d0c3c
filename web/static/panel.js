// applab panel: the live parts. Every page works without this file; with
// it, verdicts and packet lists update as they happen (server-sent events).
// Text from the server is set with textContent, never as HTML.
"use strict";
(function () {
  function liveResults() {
    var box = document.querySelector("[data-live=results]");
    if (!box || !window.EventSource) return;
    var base = document.getElementById("main").dataset.base || "";
    var es = new EventSource(base + "/results/stream");
    es.addEventListener("result", function (m) {
      var r;
      try { r = JSON.parse(m.data); } catch (e) { return; }
      var li = document.getElementById("check-" + r.task + "-" + r.check);
      if (li) {
        var st = li.querySelector(".status");
        st.className = "status " + r.status;
        st.textContent = r.label;
        var seen = li.querySelector(".seen-text");
        if (seen) seen.textContent = r.seen;
        return;
      }
      var row = document.getElementById("task-" + r.task);
      if (row && !document.querySelector("form:focus-within")) {
        // A task's state is every check's: the server knows it best.
        window.location.reload();
      }
    });
  }

  function cell(tr, text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
    return td;
  }

  function code(tr, text) {
    var td = document.createElement("td");
    var c = document.createElement("code");
    c.textContent = text;
    td.appendChild(c);
    tr.appendChild(td);
  }

  function livePackets() {
    var table = document.getElementById("packet-table");
    if (!table || !window.EventSource || !table.dataset.stream) return;
    var body = table.tBodies[0];
    var state = document.getElementById("live-state");
    var added = 0;
    var es = new EventSource(table.dataset.stream);
    es.onopen = function () { if (state) state.textContent = "Live: new " + table.dataset.kind + " appear at the bottom."; };
    es.onerror = function () { if (state) state.textContent = "Live updates paused; reconnecting…"; };
    function add(tr) {
      tr.className = "new";
      body.appendChild(tr);
      added++;
      while (body.rows.length > 2000) body.deleteRow(0);
      if (state) state.textContent = "Live: " + added + " new since the page loaded.";
    }
    es.addEventListener("event", function (m) {
      var e = JSON.parse(m.data), tr = document.createElement("tr");
      cell(tr, e.time); cell(tr, e.network); cell(tr, e.from); cell(tr, e.to); cell(tr, e.protocol);
      code(tr, e.text);
      var td = cell(tr, "ladder", e.ladder);
      td.appendChild(document.createTextNode(" "));
      var a = document.createElement("a"); a.href = e.frame; a.textContent = "frame"; td.appendChild(a);
      add(tr);
    });
    es.addEventListener("frame", function (m) {
      var f = JSON.parse(m.data), tr = document.createElement("tr");
      cell(tr, String(f.number), f.detail); cell(tr, f.time); cell(tr, f.network); cell(tr, f.src);
      cell(tr, f.dst); cell(tr, f.protocol); cell(tr, String(f.len)); code(tr, f.info);
      add(tr);
    });
    es.addEventListener("lagged", function (m) {
      if (state) state.textContent = "Traffic is fast: " + m.data + " items were skipped here (reload to see them all).";
    });
  }

  // The class grid: a cell per student and task, changed in place.
  function liveGrid() {
    var grid = document.getElementById("grid");
    if (!grid || !window.EventSource || !grid.dataset.stream) return;
    var state = document.getElementById("live-state");
    var es = new EventSource(grid.dataset.stream);
    es.onopen = function () { if (state) state.textContent = "Live: cells change as results come in."; };
    es.onerror = function () { if (state) state.textContent = "Live updates paused; reconnecting…"; };
    function recount(task) {
      var n = grid.querySelectorAll("td.cell.pass[data-task='" + CSS.escape(task) + "']").length;
      var c = document.getElementById("count-" + task);
      if (c) c.textContent = n + " / " + c.dataset.total;
    }
    es.addEventListener("cell", function (m) {
      var r;
      try { r = JSON.parse(m.data); } catch (e) { return; }
      var td = document.getElementById("cell-" + r.student + "-" + r.task);
      if (!td) return;
      if (td.classList.contains(r.status)) return;
      td.className = "cell " + r.status + " changed";
      var a = td.querySelector("a");
      a.title = r.student + ": " + r.word;
      a.firstChild.textContent = r.symbol;
      a.lastChild.textContent = r.word;
      var row = td.parentNode, passed = row.querySelector("td.passed");
      if (passed) passed.textContent = row.querySelectorAll("td.cell.pass").length;
      recount(r.task);
      td.dataset.at = String(r.at);
      td.dataset.shown = String(Date.now() / 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveResults();
    livePackets();
    liveGrid();
  });
})();

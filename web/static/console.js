// applab console: xterm.js in the page, a WebSocket to the workstation's
// TTY. One type byte per message (see crates/web/src/panel/console.rs).
"use strict";
(function () {
  var box = document.getElementById("terminal");
  var status = document.getElementById("console-status");
  if (!box || !window.Terminal) return;
  var watch = box.dataset.watch === "1";
  var term = new window.Terminal({ cursorBlink: !watch, disableStdin: watch, scrollback: 5000, fontFamily: "DejaVu Sans Mono, monospace", fontSize: 15 });
  term.open(box);
  term.fit();
  term.focus();
  window.applabTerm = term;
  var enc = new TextEncoder();
  var sock = null, drawn = 0, acked = 0, retry = 0, ended = false;

  function say(t) { status.textContent = t; }

  function send(type, data) {
    if (watch) return;
    if (sock && sock.readyState === 1) sock.send(type + data);
  }

  function ack() {
    // Output counts once xterm.js has had a turn to draw it.
    if (drawn - acked > 0) { acked = drawn; send("2", String(drawn)); }
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + box.dataset.socket +
      "?cols=" + term.cols + "&rows=" + term.rows;
    sock = new WebSocket(url);
    sock.binaryType = "arraybuffer";
    drawn = 0; acked = 0;
    sock.onopen = function () {
      retry = 0;
      if (watch) { say("Watching (read-only)."); return; }
      say("Connected to your workstation.");
      send("1", JSON.stringify({ cols: term.cols, rows: term.rows }));
    };
    sock.onmessage = function (m) {
      if (typeof m.data === "string") {
        if (m.data.charAt(0) === "1") {
          say(m.data.slice(1));
          if (m.data.indexOf("Session ") === 1) ended = true;
        }
        return;
      }
      var bytes = new Uint8Array(m.data);
      if (bytes[0] !== 48) return;
      var text = new TextDecoder().decode(bytes.subarray(1), { stream: true });
      term.write(text);
      drawn += bytes.length - 1;
      setTimeout(ack, 0);
    };
    sock.onclose = function () {
      if (ended) { say(status.textContent + " Reload the page for a new shell."); return; }
      retry = Math.min(retry + 1, 5);
      say("Disconnected; reconnecting in " + retry + " s…");
      setTimeout(connect, retry * 1000);
    };
  }

  // A watcher's terminal sends nothing (and the server drops it anyway).
  if (!watch) {
    term.on("data", function (d) { send("0", d); });
    term.on("resize", function (s) { send("1", JSON.stringify({ cols: s.cols, rows: s.rows })); });
  }
  window.addEventListener("resize", function () { term.fit(); });
  void enc;
  connect();
})();

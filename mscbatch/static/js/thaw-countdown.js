/* The bedside result page's "Give before" (templates/custody/result.html, #give-before): a page left open said
   "12 minutes left" long after the post-thaw limit had passed. This counts the minutes down, once a minute, from the
   server's deadline (data-thaw-deadline, UTC) and, once it passes, puts the page's own STOP words in its place
   (<template id="thaw-passed-words">), at the top of the verdict too (#thaw-passed, role=alert), and marks the body
   .bedside-thaw-passed (the page's green turns to STOP red): no reload.

   The tablet's clock is used only to measure the time gone by since the server served the page (data-server-now):
   a tablet set a few minutes wrong still counts right. It is a reminder, never the safety: a clock changed while
   the page is open can still mislead it, and the server judges the limit again, on its own clock, when the
   infusion is started (and refuses it past the limit) and at every new scan.
   The words are ward_words.minutes_left_words's. Without JavaScript the page keeps the words it was served with.
   No inline script (CSP script-src 'self'). */
(function () {
  "use strict";
  var line = document.getElementById("give-before");
  var words = document.getElementById("thaw-passed-words");
  if (!line || !words || !words.content) { return; }
  var deadline = Date.parse(line.getAttribute("data-thaw-deadline"));
  var servedAt = Date.parse(line.getAttribute("data-server-now"));
  if (isNaN(deadline) || isNaN(servedAt)) { return; }
  var loadedAt = Date.now();
  var timer = null;
  var passed = false;

  function msLeft() {
    return deadline - servedAt - (Date.now() - loadedAt);
  }

  function minutesLeftWords(minutes) {
    if (minutes < 1) { return "less than 1 minute left"; }
    return minutes + " minute" + (minutes !== 1 ? "s" : "") + " left";
  }

  function showPassed() {
    passed = true;
    line.textContent = "";
    line.appendChild(document.importNode(words.content, true));
    line.classList.add("give-before-passed");
    var term = document.getElementById("give-before-term");
    if (term) { term.textContent = "Post-thaw limit"; }
    var top = document.getElementById("thaw-passed");
    if (top) {
      top.appendChild(document.importNode(words.content, true));
      top.hidden = false;
    }
    document.body.classList.add("bedside-thaw-passed");
    document.title = "STOP · " + document.title;
  }

  function tick() {
    window.clearTimeout(timer);
    if (passed) { return; }
    var left = msLeft();
    if (left <= 0) { showPassed(); return; }
    var minutes = Math.floor(left / 60000);
    var shown = document.getElementById("minutes-left");
    if (shown) { shown.textContent = minutesLeftWords(minutes); }
    // again when the whole minutes change (a little after, never before), at most a minute from now
    timer = window.setTimeout(tick, (left % 60000 || 60000) + 50);
  }

  // a tablet woken up, or the page brought back (timers sleep meanwhile): the right words at once
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
  window.addEventListener("pageshow", tick);
  tick();
}());

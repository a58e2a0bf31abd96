/* The post-thaw limit counted down on a page left open, without a reload, on two pages:

   - the bedside result page's "Give before" (templates/custody/result.html, #give-before): a page left open said
     "12 minutes left" long after the limit had passed. Once it passes, the page's own STOP words
     (<template id="thaw-passed-words">) take its place, at the top of the verdict too (#thaw-passed, role=alert),
     and the body is marked .bedside-thaw-passed (the page's green turns to STOP red);
   - the ward page's "Bags out of the unit now" (templates/custody/ward.html): each thawed bag's "Give by" cell
     ([data-give-by]) counts its minutes down (.minutes-left) and, once its limit passes, shows the list's STOP
     words (<template id="give-by-passed-words">, the bag's time put in its slot), as the server says them for a bag
     already past its limit: a list left open on the ward tablet kept saying a time, never PAST, until reloaded.

   Each counts from the server's deadline (data-thaw-deadline, UTC), once a minute. The tablet's clock is used only
   to measure the time gone by since the server served the page (data-server-now): a tablet set a few minutes wrong
   still counts right. It is a reminder, never the safety: a clock changed while the page is open can still mislead
   it, and the server judges the limit again, on its own clock, when the infusion is started (and refuses it past
   the limit) and at every new scan.
   The words are ward_words.minutes_left_words's. Without JavaScript a page keeps the words it was served with.
   No inline script (CSP script-src 'self'). */
(function () {
  "use strict";

  function minutesLeftWords(minutes) {
    if (minutes < 1) { return "less than 1 minute left"; }
    return minutes + " minute" + (minutes !== 1 ? "s" : "") + " left";
  }

  /* Count `line`'s deadline down: `shown()` is where its minutes are said (none: nothing to say), `onPassed()`
     what the page does once, when the limit passes. */
  function countDown(line, shown, onPassed) {
    var deadline = Date.parse(line.getAttribute("data-thaw-deadline"));
    var servedAt = Date.parse(line.getAttribute("data-server-now"));
    if (isNaN(deadline) || isNaN(servedAt)) { return; }
    var loadedAt = Date.now();
    var timer = null;
    var passed = false;

    function tick() {
      window.clearTimeout(timer);
      if (passed) { return; }
      var left = deadline - servedAt - (Date.now() - loadedAt);
      if (left <= 0) { passed = true; onPassed(); return; }
      var where = shown();
      if (where) { where.textContent = minutesLeftWords(Math.floor(left / 60000)); }
      // again when the whole minutes change (a little after, never before), at most a minute from now
      timer = window.setTimeout(tick, (left % 60000 || 60000) + 50);
    }

    // a tablet woken up, or the page brought back (timers sleep meanwhile): the right words at once
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
    window.addEventListener("pageshow", tick);
    tick();
  }

  // the bedside result page
  var line = document.getElementById("give-before");
  var words = document.getElementById("thaw-passed-words");
  if (line && words && words.content) {
    countDown(line, function () { return document.getElementById("minutes-left"); }, function () {
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
      // the heading's description named the state under it ("CONFIRMED ... you may start"), which a screen reader
      // would still read although it is hidden: it now names the limit passed
      var heading = document.getElementById("verdict");
      if (heading && heading.hasAttribute("aria-describedby")) {
        heading.setAttribute("aria-describedby", top ? "thaw-passed" : "give-before");
      }
      document.body.classList.add("bedside-thaw-passed");
      document.title = "STOP · " + document.title;
    });
  }

  // the ward page's list: each thawed bag's Give by, the list's STOP words with the bag's own time in them
  // (a bag whose expiry comes before its post-thaw limit, data-expires-first, says EXPIRED instead)
  var passedWords = document.getElementById("give-by-passed-words");
  var expiredWords = document.getElementById("give-by-expired-words");
  if (passedWords && passedWords.content) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-give-by]"), function (cell) {
      countDown(cell, function () { return cell.querySelector(".minutes-left"); }, function () {
        var words = cell.hasAttribute("data-expires-first") && expiredWords ? expiredWords : passedWords;
        var said = document.importNode(words.content, true);
        var time = cell.querySelector(".give-by-time");
        var slot = said.querySelector("[data-give-by-time]");
        if (time && slot) {
          while (time.firstChild) { slot.appendChild(time.firstChild); }
        }
        cell.textContent = "";
        cell.appendChild(said);
        cell.setAttribute("data-give-by", "passed");
      });
    });
  }
}());

/* The ward page's "Infusions running now" (templates/custody/ward.html): a tablet left open on the ward page asks
   the server for the list again every data-refresh-seconds (custody.ward_running: the list as the page shows it,
   rendered by the server) and puts it in place without a reload, so that a bag found unfit since (STOP THE INFUSION
   NOW) or an infusion started since shows by itself; nothing typed in the scan form is lost. Its "Updated" time
   says when the list was read: a list that could not be refreshed shows it, and says so.
   A new STOP is said once to screen readers (#running-announce), when a refresh brings it: not at every refresh,
   and not those the page showed when it loaded (read with the page).
   The refresh is a page's own poll, no person's doing: it does not keep the session alive
   (auth.loading.PASSIVE_ENDPOINTS). Once the session has ended (401) the page says that the list no longer updates
   and stops asking. Without JavaScript the list's Refresh link reloads the page. No inline script (CSP).
   The refresh's answer carries the page's STOP banner too (#running-banner, at the top of the page: every running
   infusion to stop now, the system's STOP or a reaction of grade 3 or higher): put in place when what it names
   changed, without its role=alert (the new STOP is said once, by #running-announce), and "STOP · " leads the
   document's title while it names any. */
(function () {
  "use strict";
  var section = document.getElementById("running-now");
  if (!section || !window.fetch || !window.DOMParser) { return; }
  var url = section.getAttribute("data-refresh-url");
  if (!url) { return; }  // a reader the refresh would refuse (QA, technicians): the Refresh link only
  var seconds = Math.max(1, parseInt(section.getAttribute("data-refresh-seconds"), 10) || 30);
  var loginUrl = section.getAttribute("data-login-url");
  var announce = document.getElementById("running-announce");
  var note = document.getElementById("running-note");
  var auto = document.getElementById("running-auto");
  var timer = null;
  var busy = false;
  var ended = false;

  function stopRows(root) {
    var rows = {};
    Array.prototype.forEach.call(root.querySelectorAll("tr.running-stop-row"), function (row) { rows[row.id] = row; });
    return rows;
  }
  var stops = stopRows(section);  // shown when the page loaded: read with it, not said again

  function words(node) { return node ? node.textContent.replace(/\s+/g, " ").trim() : ""; }

  function say(text) {
    if (!announce) { return; }
    announce.textContent = "";  // emptied first: the same words again (a STOP back after it went) are said again
    window.setTimeout(function () { announce.textContent = text; }, 100);
  }

  function showNote(lines, withLogin) {
    if (!note) { return; }
    var text = lines.join(" ");
    if (!note.hidden && note.getAttribute("data-text") === text) { return; }  // said once, not at every attempt
    note.textContent = "";
    note.setAttribute("data-text", text);
    lines.forEach(function (line) {
      var p = document.createElement("p");
      p.textContent = line;
      note.appendChild(p);
    });
    if (withLogin && loginUrl) {
      var link = document.createElement("a");
      link.className = "button primary";
      link.href = loginUrl;
      link.textContent = "Sign in again";
      note.appendChild(link);
    }
    note.hidden = false;
  }

  function clearNote() {
    if (note) { note.hidden = true; note.textContent = ""; note.removeAttribute("data-text"); }
  }

  function schedule() {
    window.clearTimeout(timer);
    if (!ended) { timer = window.setTimeout(refresh, seconds * 1000); }
  }

  // the list read again in its place; the focus, if it was on one of its links, stays on the same link
  function place(fresh) {
    var list = document.getElementById("running-list");
    if (!list) { return; }
    var active = document.activeElement;
    var href = active && active !== list && list.contains(active) ? active.getAttribute("href") : null;
    list.parentNode.replaceChild(fresh, list);
    if (href) {
      var same = Array.prototype.filter.call(fresh.querySelectorAll("a[href]"), function (a) {
        return a.getAttribute("href") === href;
      })[0];
      if (same) { same.focus({ preventScroll: true }); }
    }
  }

  var STOP_TITLE = "STOP · ";
  var title = document.title.indexOf(STOP_TITLE) === 0 ? document.title.slice(STOP_TITLE.length) : document.title;

  // the banner at the top of the page, put in place only when what it names changed (the same banner is left alone)
  function placeBanner(doc) {
    var banner = document.getElementById("running-banner");
    var fresh = doc.getElementById("running-banner");
    if (!banner || !fresh) { return; }
    var key = fresh.getAttribute("data-key") || "";
    if (key !== (banner.getAttribute("data-key") || "")) {
      fresh = document.adoptNode(fresh);
      fresh.removeAttribute("role");  // said by #running-announce, once: not again at each change
      banner.parentNode.replaceChild(fresh, banner);
    }
    document.title = key ? STOP_TITLE + title : title;
  }

  function newStopWords(found) {
    return Object.keys(found).filter(function (id) { return !stops[id]; }).map(function (id) {
      var row = found[id];
      var bag = words(row.querySelector("td[data-label=Bag]"));
      var patient = words(row.querySelector("td[data-label=Patient]"));
      return "STOP THE INFUSION NOW: bag " + bag + ", patient " + patient + ". " +
        words(row.querySelector(".flag-stop")).replace(/^STOP THE INFUSION NOW:\s*/, "");
    });
  }

  function refresh() {
    if (busy || ended) { return; }
    busy = true;
    window.clearTimeout(timer);
    window.fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { return { signedOut: true }; }
        if (response.status === 403) { return { refused: true }; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text().then(function (html) { return { html: html }; });
      })
      .then(function (answer) {
        busy = false;
        if (answer.signedOut || answer.refused) {
          ended = true;
          if (auto) { auto.hidden = true; }
          showNote(answer.signedOut ?
            ["You are signed out: this list NO LONGER UPDATES (it shows the infusions as at the time above).",
             "Sign in again to see the infusions running now."] :
            ["This list NO LONGER UPDATES: your account may no longer read it.",
             "Reload the page to see the infusions running now."], answer.signedOut);
          return;
        }
        var doc = new DOMParser().parseFromString(answer.html, "text/html");
        var fresh = doc.getElementById("running-list");
        if (!fresh) { throw new Error("no list in the answer"); }
        placeBanner(doc);
        fresh = document.adoptNode(fresh);
        var found = stopRows(fresh);
        var said = newStopWords(found);
        place(fresh);
        stops = found;
        clearNote();
        if (said.length) { say(said.join(" ")); }
        schedule();
      })
      .catch(function () {
        busy = false;
        showNote(["Could not update this list (no answer from the server): it shows the infusions as at the " +
                  "time above.", "It tries again every " + seconds + " seconds."], false);
        schedule();
      });
  }

  // the Refresh link refreshes the list in place (nothing typed in the scan form is lost); once the list no longer
  // updates, it reloads the page as without JavaScript
  section.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("#running-refresh") : null;
    if (!link || ended) { return; }
    event.preventDefault();
    refresh();
  });
  // a tablet woken up, or the tab brought back: the list at once, not up to 30 s later
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  if (auto) { auto.hidden = false; }
  schedule();
}());

/* The summary of a refused form at the top of the page (templates/base.html, issue #6). No inline script
   (CSP script-src 'self'). Without JavaScript the summary is still there, first in the page, role="alert",
   and its autofocus attribute takes the focus; this script makes sure of it and makes each link go to its field:
   - focus the summary and bring it into view (with the page's header when it fits);
   - a link focuses its field (a fragment link alone only scrolls), with the field's label in view;
   - on a scanning page (a [data-scan-field]), the next scan goes to the scan field: a keyboard-wedge scanner
     types into whatever has the focus, and the focus is on the summary. */
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (!summary) { return; }

  function focusSummary() {
    summary.focus({ preventScroll: true });
    var top = summary.getBoundingClientRect().top + window.pageYOffset;
    if (top < window.innerHeight / 2) { window.scrollTo(0, 0); } else { summary.scrollIntoView({ block: "start" }); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusSummary);
  } else {
    focusSummary();
  }

  function target(id) {
    var el = document.getElementById(id);  // each form of a page has its own field ids (the ward's dispatch-bag)
    if (!el) { return null; }
    if (el.matches("input, select, textarea, button")) { return el; }
    return el.querySelector("input:not([type=hidden]), select, textarea") || el;  // radio lists: the first choice
  }

  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-field]");
    if (!link) { return; }
    var field = target(link.getAttribute("data-field"));
    if (!field) { return; }
    event.preventDefault();
    var holder = field.closest(".field, fieldset") || field;
    holder.scrollIntoView({ block: "start" });
    if (field.tabIndex < 0 && !field.matches("input, select, textarea, button")) { field.setAttribute("tabindex", "-1"); }
    field.focus({ preventScroll: true });
  });

  var scan = document.querySelector("[data-scan-field]");
  if (scan) {
    summary.addEventListener("keydown", function (event) {
      if (event.key && event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) {
        scan.focus();  // the key's character is then typed into the scan field
      }
    });
  }
})();

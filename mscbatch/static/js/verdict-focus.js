/* The bedside result page (templates/custody/result.html): its verdict (MATCHES, STOP, NOT STARTED, or STOP THE
   INFUSION NOW) is brought into view and given the focus on load. At 200 % zoom on a ward tablet the header fills
   half the screen and the verdict was below the fold; a screen reader now starts on it too.
   No inline script (CSP script-src 'self'). The page marks one heading [data-focus-on-load] (with tabindex="-1").
   A refused form's summary (#error-summary, js/error-summary.js) keeps the focus: it says what to do first. A field
   the page gives the focus (autofocus: the start form's wristband, into which a keyboard-wedge scanner types) keeps
   it too: the verdict is then only brought into view. */
(function () {
  "use strict";
  function focusVerdict() {
    if (document.getElementById("error-summary")) { return; }
    var heading = document.querySelector("[data-focus-on-load]");
    if (!heading) { return; }
    var rect = heading.getBoundingClientRect();
    if (rect.top < 0 || rect.bottom > window.innerHeight) {
      // its section's start (the verdict's icon above the word) when the word then still fits, else the word itself
      var section = heading.closest("section") || heading;
      var top = section.getBoundingClientRect().top;
      (rect.bottom - top <= window.innerHeight ? section : heading).scrollIntoView({ block: "start" });
    }
    if (document.querySelector("input[autofocus], select[autofocus], textarea[autofocus]")) { return; }
    heading.focus({ preventScroll: true });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusVerdict);
  } else {
    focusVerdict();
  }
}());

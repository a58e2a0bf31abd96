/* The header's Menu button (templates/base.html). At 200 % zoom on a ward tablet (640 x 400 CSS px) the navigation,
   the user's name and Sign out took half the screen and pushed every page, a bedside verdict too, below the fold.
   On a narrow or short screen (the media query of mscbatch.css) this folds them behind a Menu button
   (aria-expanded, aria-controls); on a wider one they stay open and the button is hidden. Without this script the
   menu is never folded (one row that scrolls sideways): every link stays reachable.
   No inline script (CSP script-src 'self'). */
(function () {
  "use strict";
  var button = document.querySelector(".menu-toggle");
  var menu = button && document.getElementById(button.getAttribute("aria-controls"));
  var header = button && button.closest(".topbar");
  if (!button || !menu || !header) { return; }
  var compact = window.matchMedia("(max-width: 640px), (max-height: 500px)");

  function setOpen(open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    menu.hidden = !open;
  }

  function fit() {
    header.classList.toggle("menu-ready", compact.matches);
    button.hidden = !compact.matches;
    setOpen(!compact.matches);  // folded on a small screen, always open on a wide one
  }

  button.addEventListener("click", function () {
    setOpen(button.getAttribute("aria-expanded") !== "true");
  });
  // Escape closes the open menu wherever the focus is (a click on the page leaves it open, the focus on the body)
  // and gives the focus back to its button. A closed menu, a wide screen or an Escape another control already
  // answered leave the key alone.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented || !compact.matches) { return; }
    if (button.getAttribute("aria-expanded") !== "true") { return; }
    setOpen(false);
    button.focus();
  });
  if (compact.addEventListener) {
    compact.addEventListener("change", fit);
  } else if (compact.addListener) {
    compact.addListener(fit);
  }
  fit();
}());

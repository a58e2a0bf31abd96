/* The release page's "Enter one result" (templates/release/review.html): choosing a test chooses its own unit in the
   unit select, from the test option's data-unit. No inline script (CSP script-src 'self'). Without JavaScript the
   unit stays "choose the unit" and the server refuses it left so, naming the test's unit; the unit is never
   assumed, as it is there to catch a result read in another unit. A test chosen by the page itself ("enter the
   result" of a row) comes with its unit chosen by the server. */
(function () {
  "use strict";
  var selects = document.querySelectorAll("select[data-unit-select]");
  Array.prototype.forEach.call(selects, function (testSelect) {
    var unitSelect = document.getElementById(testSelect.getAttribute("data-unit-select"));
    if (!unitSelect) { return; }
    testSelect.addEventListener("change", function () {
      var option = testSelect.options[testSelect.selectedIndex];
      var unit = option ? option.getAttribute("data-unit") : null;
      unitSelect.value = unit || "";  // no test chosen: no unit either
      if (unitSelect.value !== (unit || "")) { unitSelect.value = ""; }  // a unit the select lacks: none chosen
    });
  });
})();

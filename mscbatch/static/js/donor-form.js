/* The donor form (templates/donors/form.html): the "Negative retest 180 days" field is shown only while the
   protocol chosen has a wider sample window that such a retest opens (the rule set ids on the wrapper's
   data-shown-for-rule-sets). No inline script (CSP script-src 'self'). The server renders the same choice for the
   protocol it was given; a value left in the hidden field is still posted, and the other rule sets ignore it. The
   `hidden` attribute takes the field out of the tab order and the accessibility tree as well as off the screen. */
(function () {
  "use strict";
  var wrap = document.querySelector("[data-shown-for-rule-sets]");
  var select = document.getElementById("rule_set_id");
  if (!wrap || !select) { return; }
  var ids = wrap.getAttribute("data-shown-for-rule-sets").split(" ");
  function update() {
    // a refusal next to the field keeps it in view, whatever the protocol
    wrap.hidden = ids.indexOf(select.value) === -1 && !wrap.querySelector(".error");
  }
  select.addEventListener("change", update);
  update();
})();

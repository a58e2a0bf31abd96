/* What a nurse typed into a form is not lost when the session had ended before it was sent.

   A reaction typed on the infusion page 20 minutes after the page was opened is sent after the 15-minute idle
   timeout: the server refuses it (nothing is recorded) and asks to sign in again (auth.access.signed_out_redirect,
   its message marked [data-unsaved-form]). Signed in, the nurse is back on the same page, and here the words typed
   are put back into the empty form, with a note that they are NOT recorded yet. Nothing is ever sent by this script:
   the nurse reads the words again and sends them.

   A form opts in with data-draft (a name) and data-draft-user (the signed-in user's id). Its fields are kept in the
   tab's sessionStorage when it is sent, or when the nurse follows a [data-keeps-drafts] link (the infusion page's
   "Sign in again", shown once its STOP watch finds the session ended). Never kept: passwords, hidden fields (the
   CSRF token), files. A kept form is put back only for the same user, on the same page, within 30 minutes, and
   only into fields still empty: a form the server showed again with what was typed (a refused value) keeps it.
   A form sent and not refused for the session's end (recorded, or shown again by the server) has its words removed
   at the next page. No inline script (CSP script-src 'self'). */
(function () {
  "use strict";
  var PREFIX = "mscbatch-draft:";
  var MAX_AGE_MS = 30 * 60 * 1000;
  var store;
  try { store = window.sessionStorage; } catch (error) { return; }  // storage refused: the form works as before
  if (!store) { return; }

  function read(key) {
    try { return JSON.parse(store.getItem(key)); } catch (error) { return null; }
  }
  function write(key, draft) {
    try { store.setItem(key, JSON.stringify(draft)); } catch (error) { /* storage full: nothing kept */ }
  }
  function keptKeys() {
    var keys = [];
    for (var i = 0; i < store.length; i += 1) {
      var key = store.key(i);
      if (key && key.indexOf(PREFIX) === 0) { keys.push(key); }
    }
    return keys;
  }
  function keyOf(form) {
    return PREFIX + location.pathname + "#" + form.getAttribute("data-draft");
  }
  function kept(field) {
    var type = (field.type || "").toLowerCase();
    return field.name && field.name !== "csrf_token" && !field.disabled &&
      ["password", "hidden", "file", "submit", "button", "reset", "image"].indexOf(type) < 0;
  }
  function fieldsOf(form) {
    var values = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!kept(field)) { return; }
      var type = (field.type || "").toLowerCase();
      if (type === "checkbox" || type === "radio") {
        if (field.checked) { values[field.name] = field.value; }
      } else if (field.value !== "") {
        values[field.name] = field.value;
      }
    });
    return values;
  }
  function keep(form, refused) {
    var values = fieldsOf(form);
    if (Object.keys(values).length === 0) { return; }
    write(keyOf(form), { at: Date.now(), user: form.getAttribute("data-draft-user"), refused: refused,
                         fields: values });
  }
  function empty(field) {
    if (field.tagName === "SELECT") { return field.selectedIndex <= 0; }
    var type = (field.type || "").toLowerCase();
    if (type === "checkbox" || type === "radio") { return false; }  // a choice shown by the server stays
    return field.value === "";
  }
  function putBack(form, values) {
    var restored = [];
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!kept(field) || !Object.prototype.hasOwnProperty.call(values, field.name) || !empty(field)) { return; }
      field.value = values[field.name];
      if (field.value === values[field.name]) { restored.push(field); }  // a choice no longer offered stays empty
    });
    if (restored.length === 0) { return; }
    var note = document.createElement("p");
    note.className = "flash flash-warning draft-restored";
    note.id = "draft-restored-" + form.getAttribute("data-draft");
    note.setAttribute("role", "alert");
    note.textContent = "What you typed before your session ended is back in the form below. It is NOT recorded " +
      "yet: check it, then send it again.";
    form.parentNode.insertBefore(note, form);
    restored[0].focus({ preventScroll: true });
    note.scrollIntoView({ block: "center" });
  }

  var now = Date.now();
  var refusedNow = document.querySelector("[data-unsaved-form]") !== null;
  keptKeys().forEach(function (key) {
    var draft = read(key);
    if (!draft || typeof draft.at !== "number" || now - draft.at > MAX_AGE_MS) { store.removeItem(key); return; }
    if (draft.refused) { return; }
    if (refusedNow) { draft.refused = true; write(key, draft); return; }
    store.removeItem(key);  // sent and not refused for a session's end: recorded, or shown again by the server
  });

  var forms = document.querySelectorAll("form[data-draft][data-draft-user]");
  Array.prototype.forEach.call(forms, function (form) {
    var key = keyOf(form);
    var draft = read(key);
    if (draft && draft.refused) {
      store.removeItem(key);
      if (draft.user === form.getAttribute("data-draft-user")) { putBack(form, draft.fields || {}); }
    }
    form.addEventListener("submit", function () { keep(form, false); });
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("[data-keeps-drafts]") : null;
    if (!link) { return; }
    Array.prototype.forEach.call(forms, function (form) { keep(form, true); });
  }, true);
}());

/* Ward scanning page (issue 7): one scan field for keyboard-wedge scanners and a camera that decodes QR
   codes in the browser with the vendored jsQR (static/vendor/jsqr). No inline script (CSP script-src 'self').

   A scan is text followed by Enter. A bag label code (the QR's URL ".../v/<ref>.<signature>", the bare token
   "<ref>.<signature>", a typed DIN of 13-14 characters, or the label's Code 128 read) fills the bag field;
   anything else is a wristband.
   When both are filled the bedside check runs at once (the server decides everything: this only routes).

   The start of the infusion (the confirmed check's page, form "start-form") asks for both scans again: a
   scanner's Enter in one of its fields moves on to the other while it is empty, so that the start is never sent
   with half of it, and a bag label code read into the wristband field goes to the bag field. */
/* What a bag label gives a scanner: the QR's URL or bare token, a typed DIN (13-14 characters), or the Code 128
   read ("=" + DIN + 2 flag characters). Anything else is a wristband. One rule for both pages below.
   A bag number followed by a dot is a bag label's code however little of it was read ("X999926000005P.RELLG", a
   QR read cut short): it goes to the bag field, where the server says it was not read, and never replaces the
   wristband scanned. */
var mscbatchIsBag = (function () {
  "use strict";
  var TOKEN = /(\/v\/[^\s]+|^[A-Z0-9*-]{1,40}\.[A-Z2-7]{10,}$)/i;
  var CUT_TOKEN = /^[A-Z][A-Z0-9]{4}\d{8}[0-9A-Z*]?\./i;
  var DIN = /^[A-Z][A-Z0-9]{4}\s?\d{2}\s?\d{6}\s?[0-9A-Z*]?$/i;
  var SYMBOL = /^=[A-Z0-9]{15}$/i;
  return function (text) { return TOKEN.test(text) || CUT_TOKEN.test(text) || DIN.test(text) || SYMBOL.test(text); };
}());

(function () {
  "use strict";
  var start = document.getElementById("start-form");
  if (!start) { return; }
  var wristband = document.getElementById("wristband");
  var bag = document.getElementById("start-bag");
  if (!wristband || !bag) { return; }
  wristband.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") { return; }
    var text = wristband.value.trim();
    if (mscbatchIsBag(text)) {  // the bag scanned first
      bag.value = text;
      wristband.value = "";
      event.preventDefault();
      wristband.focus();
      return;
    }
    if (!bag.value.trim()) { event.preventDefault(); bag.focus(); }
  });
  bag.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !wristband.value.trim()) { event.preventDefault(); wristband.focus(); }
  });
  // a refused start shown again (NOT STARTED): the emptied field has the focus, so that the scanner's next read goes
  // there and not to the page's summary of the refusal (which js/error-summary.js focuses first, on the same event)
  var refused = start.querySelector("[aria-invalid=true]");
  function focusRefused() { refused.focus({ preventScroll: true }); }
  if (refused) {
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", focusRefused); }
    else { focusRefused(); }
  }
}());

(function () {
  "use strict";
  var form = document.getElementById("ward-form");
  if (!form) { return; }
  var scan = form.querySelector("[data-scan-field]");
  var wristband = document.getElementById("wristband");
  var bag = document.getElementById("bag");
  var status = document.getElementById("scan-status");
  var checkButton = document.getElementById("check-button");

  var isBag = mscbatchIsBag;
  // A code already in a field when the page loads (a refused step shown again) was not scanned now: it never
  // pairs with the next scan on its own. Only codes scanned or typed on this page run the check by themselves.
  var fresh = { wristband: false, bag: false };
  [["wristband", wristband], ["bag", bag]].forEach(function (pair) {
    if (pair[1]) { pair[1].addEventListener("input", function () { fresh[pair[0]] = true; }); }
  });

  function say(message) { if (status) { status.textContent = message; } }

  function runCheckIfReady() {
    if (checkButton && fresh.wristband && fresh.bag && wristband.value.trim() && bag.value.trim()) {
      say("Checking…");
      if (form.requestSubmit) { form.requestSubmit(checkButton); } else { checkButton.click(); }
    }
  }

  function accept(text) {
    text = (text || "").trim();
    if (!text) { return; }
    if (isBag(text)) {
      bag.value = text;
      fresh.bag = true;
      say("Bag scanned. " + (fresh.wristband && wristband.value.trim() ? "" : "Now scan the patient's wristband."));
    } else {
      wristband.value = text;
      fresh.wristband = true;
      say("Wristband scanned. " + (fresh.bag && bag.value.trim() ? "" : "Now scan the bag label."));
    }
    runCheckIfReady();
  }

  if (scan) {
    scan.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        var text = scan.value;
        scan.value = "";
        accept(text);
      }
    });
  }
  // a scanner aimed at the wristband field moves on to the bag field instead of submitting half a check
  if (wristband) {
    wristband.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !bag.value.trim()) { event.preventDefault(); bag.focus(); }
    });
  }

  // ---- camera ------------------------------------------------------------------------------------------
  var cameraButton = document.getElementById("camera-button");
  var box = document.getElementById("camera-box");
  var video = document.getElementById("camera-video");
  var canvas = document.getElementById("camera-canvas");
  var cameraStatus = document.getElementById("camera-status");
  var stopButton = document.getElementById("camera-stop");
  var stream = null;
  var hasCamera = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.jsQR);

  function stopCamera() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    if (box) { box.hidden = true; }
    if (scan) { scan.focus(); }
  }

  function tick() {
    if (!stream) { return; }
    if (video.readyState === video.HAVE_ENOUGH_DATA && video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      var context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      var image = context.getImageData(0, 0, canvas.width, canvas.height);
      var code = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      if (code && code.data) {
        form.dataset.decoded = code.data;
        stopCamera();
        accept(code.data);
        return;
      }
    }
    window.requestAnimationFrame(tick);
  }

  // what went wrong with the camera, in plain words (the browser's error names mean nothing at the bedside)
  function cameraWords(name) {
    if (name === "NotFoundError" || name === "OverconstrainedError") { return "No camera was found on this device."; }
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "Permission to use the camera was refused (allow the camera in the browser's settings).";
    }
    if (name === "NotReadableError" || name === "AbortError") {
      return "The camera is busy: another app or tab is using it. Close it and try again.";
    }
    return "The camera cannot be used.";
  }

  if (cameraButton && hasCamera) {
    cameraButton.hidden = false;
    cameraButton.addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (s) {
          stream = s;
          box.hidden = false;
          video.srcObject = s;
          video.setAttribute("playsinline", "true");
          return video.play();
        })
        .then(function () { window.requestAnimationFrame(tick); })
        .catch(function (error) {
          stopCamera();
          var name = error && error.name;
          if (name === "NotFoundError" || name === "OverconstrainedError") {
            // no camera on this device: the button would only fail again
            cameraButton.hidden = true;
            cameraButton.disabled = true;
          }
          say(cameraWords(name) + " Use the scanner or type the code.");
        });
    });
    if (stopButton) { stopButton.addEventListener("click", stopCamera); }
    if (cameraStatus) { cameraStatus.textContent = "Hold the QR code of the bag label in the frame."; }
  }
}());

/* A second tap on a button while its form is being sent would send the form again, and the second answer (the bag
   already received: "No bag was scanned") would replace the first ("received"). Once a form is sent its buttons
   are disabled; without JavaScript the forms still work. Disabled after the submit event, so that the pressed
   button's name and value (the ward page's action) are still sent. */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("form[method=post]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      window.setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll("button[type=submit], button:not([type])"),
          function (button) { button.disabled = true; });
      }, 0);
    });
  });
  window.addEventListener("pageshow", function (event) {  // Back to a page kept in the browser's cache
    if (!event.persisted) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("form[data-sent]"), function (form) {
      delete form.dataset.sent;
      Array.prototype.forEach.call(form.querySelectorAll("button"), function (button) { button.disabled = false; });
    });
  });
}());

/* The infusion page while the infusion runs: asks the server every few seconds (stop.json, signed-in session)
   whether the bag has since been found unfit (lot recalled, late failed test, donor reopened) and then shows
   STOP THE INFUSION NOW full screen, in the server's words, without a reload: nothing typed is lost. Once the
   session has ended (401) it says so in large words and goes on watching through watch.json with the page's watch
   token (sent without the cookie: it keeps no session alive), for as long as the infusion runs. If the watch is
   refused too (the infusion ended, the token expired) it says plainly that the page no longer watches. */
(function () {
  "use strict";
  var watch = document.getElementById("stop-watch");
  if (!watch || !window.fetch) { return; }
  var url = watch.getAttribute("data-stop-url");
  var watchUrl = watch.getAttribute("data-watch-url");
  var watchHeader = watch.getAttribute("data-watch-header");
  var watchToken = watch.getAttribute("data-watch-token");
  var loginUrl = watch.getAttribute("data-login-url");
  var seconds = Math.max(1, parseInt(watch.getAttribute("data-poll-seconds"), 10) || 20);
  var signedOut = false;
  var note = null;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function showStop(reasons, endReason) {
    var section = element("section", "verdict verdict-stop running-stop");
    section.id = "stop-running";
    section.setAttribute("role", "alert");
    section.setAttribute("aria-labelledby", "stop-running-word");
    var icon = element("p", "verdict-icon", "\u2716");
    icon.setAttribute("aria-hidden", "true");
    section.appendChild(icon);
    var word = element("h2", "verdict-word", "STOP THE INFUSION NOW");
    word.id = "stop-running-word";
    section.appendChild(word);
    section.appendChild(element("p", "verdict-sub", "Since it started, something has changed that forbids it:"));
    var list = element("ul", "failures");
    list.id = "stop-reasons";
    reasons.forEach(function (reason) {  // each code on one line, as the server's own page writes them
      var item = element("li");
      String(reason).split(/(\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+\b)/).forEach(function (part, index) {
        item.appendChild(index % 2 ? element("span", "code", part) : document.createTextNode(part));
      });
      list.appendChild(item);
    });
    section.appendChild(list);
    section.appendChild(element("p", "verdict-sub", "Keep the bag and the line. Record the volume given (End " +
      "infusion) and any reaction, and tell the clinician."));
    watch.parentNode.replaceChild(section, watch);
    document.body.classList.add("bedside-stop");
    offerStoppedEnd(endReason);
    window.scrollTo(0, 0);
  }

  // the end's one reason once the system says STOP (as the server's page offers it): "stopped" sends
  // infusions.STOPPED_BY_SYSTEM, which the server accepts only while its STOP stands
  function offerStoppedEnd(endReason) {
    var form = document.getElementById("end");
    if (!form || document.getElementById("end-stopped")) { return; }
    var holder = element("p");
    holder.id = "end-stopped";
    // the server's own words (infusions.STOPPED_BY_SYSTEM, sent with the STOP): one label for one action
    // the STOP's end stands out; the plain end becomes the secondary one (as the server's page draws them)
    var plain = document.getElementById("end-plain");
    if (plain) { plain.className = "button big secondary"; plain.textContent = "End infusion (give your own reason)"; }
    var button = element("button", "button big primary", "End infusion \u2014 reason: " +
      (endReason || "the system's STOP"));
    button.type = "submit";
    button.name = "stopped";
    button.value = "1";
    holder.appendChild(button);
    holder.appendChild(element("span", "hint", " Records the volume above with this one reason: the infusion was " +
      "stopped because this page said STOP."));
    form.appendChild(holder);
  }

  // in large words, beside the watch (not inside it: a STOP replacing the watch keeps it below)
  function showNote(heading, lines) {
    if (!note) {
      note = element("section", "flash flash-error");
      note.id = "stop-watch-signed-out";
      note.setAttribute("role", "alert");
      watch.parentNode.insertBefore(note, watch.nextSibling);
    }
    note.textContent = "";
    var title = element("h2", null, heading);
    title.id = "stop-watch-signed-out-word";
    note.appendChild(title);
    lines.forEach(function (line) { note.appendChild(element("p", "verdict-sub", line)); });
    if (loginUrl) {
      var link = element("a", "button big primary", "Sign in again");
      link.href = loginUrl;
      link.setAttribute("data-keeps-drafts", "");  // what was typed here comes back after it (js/form-draft.js)
      note.appendChild(link);
    }
  }

  function showSignedOut() {
    showNote("You are signed out.", [
      "This page still watches for STOP: if the bag must be stopped, STOP THE INFUSION NOW appears here.",
      "Sign in again to record anything (the end of the infusion, a reaction)."]);
  }

  function showNotWatching() {
    showNote("You are signed out, and this page NO LONGER watches for STOP.", [
      "Sign in again to see the infusion and to record anything."]);
  }

  function ask() {
    if (signedOut) {
      var headers = { "Accept": "application/json" };
      headers[watchHeader] = watchToken;
      return window.fetch(watchUrl, { credentials: "omit", cache: "no-store", headers: headers });
    }
    return window.fetch(url, { credentials: "same-origin", cache: "no-store",
                               headers: { "Accept": "application/json" } });
  }

  function poll() {
    ask()
      .then(function (response) {
        if (response.status === 401 && !signedOut) { return { signed_out: true }; }
        if (response.status === 401 || response.status === 403) { return { refused: true }; }
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (answer && answer.signed_out) {
          if (!watchToken || !watchUrl || !watchHeader) { showNotWatching(); return; }
          signedOut = true;
          showSignedOut();
          poll();  // at once: a STOP that came while the session ended is not left waiting
          return;
        }
        if (answer && answer.refused) { showNotWatching(); return; }
        if (answer && answer.stop_now) { showStop(answer.reasons || [], answer.end_reason); return; }
        if (answer && answer.ended) { return; }
        window.setTimeout(poll, seconds * 1000);
      })
      .catch(function () { window.setTimeout(poll, seconds * 1000); });
  }
  window.setTimeout(poll, seconds * 1000);
}());

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
   read ("=" + DIN + 2 flag characters). Anything else is a wristband. One rule for both pages below. */
var mscbatchIsBag = (function () {
  "use strict";
  var TOKEN = /(\/v\/[^\s]+|^[A-Z0-9*-]{1,40}\.[A-Z2-7]{10,}$)/i;
  var DIN = /^[A-Z][A-Z0-9]{4}\s?\d{2}\s?\d{6}\s?[0-9A-Z*]?$/i;
  var SYMBOL = /^=[A-Z0-9]{15}$/i;
  return function (text) { return TOKEN.test(text) || DIN.test(text) || SYMBOL.test(text); };
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

  function say(message) { if (status) { status.textContent = message; } }

  function runCheckIfReady() {
    if (checkButton && wristband.value.trim() && bag.value.trim()) {
      say("Checking…");
      if (form.requestSubmit) { form.requestSubmit(checkButton); } else { checkButton.click(); }
    }
  }

  function accept(text) {
    text = (text || "").trim();
    if (!text) { return; }
    if (isBag(text)) {
      bag.value = text;
      say("Bag scanned. " + (wristband.value.trim() ? "" : "Now scan the patient's wristband."));
    } else {
      wristband.value = text;
      say("Wristband scanned. " + (bag.value.trim() ? "" : "Now scan the bag label."));
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
          say("The camera cannot be used (" + error.name + "). Use the scanner or type the code.");
        });
    });
    if (stopButton) { stopButton.addEventListener("click", stopCamera); }
    if (cameraStatus) { cameraStatus.textContent = "Hold the QR code of the bag label in the frame."; }
  }
}());

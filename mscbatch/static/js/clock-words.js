/* A date-time field of the site said back in 24-hour words beside it: "= 21:58 CET, Sun 6 Dec 2026".

   The site's date-time fields are datetime-local inputs (web/date_fields.DateTimeSiteField): on a tablet set to a
   US locale the browser shows them as mm/dd/yyyy and AM/PM, and an onset picked as "09:58 PM" was read, and
   checked, as 09:58. The words say what the server will record, on the 24-hour clock, with the site zone's name
   for that day (CET or CEST), and say when that time happens twice or does not exist there (the clocks changed):
   the server refuses both, naming the time to type (site.site_time).
   An input opts in with data-clock-words="<id of the element to fill>" and data-zone="<IANA zone of the site>".
   Without JavaScript (or without Intl time zones) nothing is said and the server judges the time as ever.
   No inline script (CSP script-src 'self'). */
(function () {
  "use strict";
  var TYPED = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::\d{2})?(?:\s+([A-Za-z]{2,6}))?$/;
  var DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // the wall time (as if UTC, in ms) the zone's clocks show at the instant `ms`
  function wallAt(ms, zone) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", {timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit"}).formatToParts(new Date(ms)).forEach(function (p) {
      parts[p.type] = Number(p.value);
    });
    return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour % 24, parts.minute);
  }

  function zoneName(ms, zone) {
    var name = new Intl.DateTimeFormat("en-GB", {timeZone: zone, timeZoneName: "short"}).formatToParts(new Date(ms))
      .filter(function (p) { return p.type === "timeZoneName"; });
    return name.length ? name[0].value : zone;
  }

  function words(typed, zone) {
    var m = TYPED.exec(typed.trim());
    if (!m) { return ""; }
    var wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
    var day = new Date(wall);
    var clock = m[4] + ":" + m[5];
    var date = DAYS[day.getUTCDay()] + " " + day.getUTCDate() + " " + MONTHS[day.getUTCMonth()] + " " + day.getUTCFullYear();
    if (m[6]) { return "= " + clock + " " + m[6].toUpperCase() + ", " + date + " (24-hour clock)"; }
    // the instants whose wall time is the one typed: the zone's offsets 12 hours before and after are the only two
    var found = [];
    [wall - 43200000, wall + 43200000].forEach(function (near) {
      var instant = wall - (wallAt(near, zone) - near);
      if (wallAt(instant, zone) === wall && found.indexOf(instant) < 0) { found.push(instant); }
    });
    if (!found.length) {
      return "= " + clock + ", " + date + ": this time does not exist in " + zone + " (the clocks went forward an hour): check the time";
    }
    if (found.length > 1) {
      return "= " + clock + ", " + date + ": this time happens twice in " + zone + " (the clocks went back): " +
        clock + " " + zoneName(Math.min.apply(null, found), zone) + " first, then " + clock + " " +
        zoneName(Math.max.apply(null, found), zone) + " an hour later. Recording it asks which";
    }
    return "= " + clock + " " + zoneName(found[0], zone) + ", " + date + " (24-hour clock)";
  }

  Array.prototype.forEach.call(document.querySelectorAll("input[data-clock-words]"), function (input) {
    var shown = document.getElementById(input.getAttribute("data-clock-words"));
    var zone = input.getAttribute("data-zone");
    if (!shown || !zone || typeof Intl === "undefined" || !Intl.DateTimeFormat.prototype.formatToParts) { return; }
    function say() {
      var said = "";
      try { said = words(input.value || "", zone); } catch (error) { said = ""; }  // a zone this browser lacks
      shown.textContent = said;
      shown.hidden = !said;
    }
    input.addEventListener("input", say);
    input.addEventListener("change", say);
    say();
  });
}());

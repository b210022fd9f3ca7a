/* htmx settings for Concordance, kept out of the page so the Content-Security-Policy can forbid
   inline script. Loaded right after static/vendor/htmx.min.js on every page (templates/base.html). */
(function () {
  "use strict";
  if (!window.htmx) { return; }
  // No eval (hx-on, js: expressions) and no <script> in swapped content: the CSP forbids both anyway.
  htmx.config.allowEval = false;
  htmx.config.allowScriptTags = false;
  // htmx would inject a <style> element for its indicators, which style-src 'self' refuses;
  // the same rules live in static/portal/portal.css.
  htmx.config.includeIndicatorStyles = false;
  htmx.config.selfRequestsOnly = true;
  htmx.config.historyCacheSize = 0;  // no copies of clinical pages in localStorage

  // Django's CSRF token travels in a header on every htmx request (hx-headers on <body>), read from
  // the csrf-token meta tag because the cookie is HttpOnly.
  function installCsrfHeader() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (!meta || !document.body) { return; }
    var headers = {};
    var existing = document.body.getAttribute("hx-headers");
    if (existing) {
      try { headers = JSON.parse(existing); } catch (e) { headers = {}; }
    }
    headers["X-CSRFToken"] = meta.getAttribute("content");
    document.body.setAttribute("hx-headers", JSON.stringify(headers));
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", installCsrfHeader);
  } else {
    installCsrfHeader();
  }
})();

/* Automatic logoff, the visible half: a countdown that warns a minute before the session ends and then
   leaves the page. The server enforces the timeout itself (portal.accounts.middleware); this only
   spares the user a surprise. No dependencies. The timeout comes from <body data-idle-timeout>. */
(function () {
  "use strict";
  var body = document.body;
  var timeout = parseInt(body && body.getAttribute("data-idle-timeout"), 10);
  var banner = document.getElementById("session-warning");
  if (!timeout || timeout <= 0 || !banner || !body.hasAttribute("data-signed-in")) { return; }
  var remainingEl = document.getElementById("session-remaining");
  var stayButton = document.getElementById("session-stay");
  var warnAt = Math.min(60, Math.floor(timeout / 2));
  var deadline = Date.now() + timeout * 1000;
  var BACKGROUND = { "X-Concordance-Background": "1" };

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function restart(seconds) {
    deadline = Date.now() + seconds * 1000;
    banner.hidden = true;
  }

  function leave() {
    // Reloading lets the server decide: an expired session is ended and sent to the login page.
    window.location.reload();
  }

  function expire() {
    // Another tab may have kept the session alive: ask (a background request, not activity) first.
    fetch(body.getAttribute("data-session-status-url"), { headers: BACKGROUND, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (status.authenticated && status.remaining_s > 1) { restart(status.remaining_s); } else { leave(); }
      })
      .catch(leave);
  }

  function tick() {
    var left = Math.round((deadline - Date.now()) / 1000);
    if (left <= 0) { expire(); return; }
    if (left <= warnAt) {
      remainingEl.textContent = String(left);
      banner.hidden = false;
    }
  }

  stayButton.addEventListener("click", function () {
    fetch(body.getAttribute("data-keepalive-url"), {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken() },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.ok) { restart(timeout); } else { leave(); }
    }).catch(leave);
  });

  // A request the user made through htmx counts as activity on the server, so restart here too;
  // background requests (progress polling) carry the header and do not.
  document.addEventListener("htmx:afterRequest", function (event) {
    var headers = (event.detail && event.detail.requestConfig && event.detail.requestConfig.headers) || {};
    if (!headers["X-Concordance-Background"]) { restart(timeout); }
  });

  window.setInterval(tick, 1000);
})();

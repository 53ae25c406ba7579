// Swagger UI over this edge's /openapi.json. A magic-link sign-in arrives here with a one-time
// `#handoff=<code>` in the fragment: it leaves the address bar at once, is exchanged for the admin
// session, and the session then authorizes "Try it out" on this page (kept in memory only).
(function () {
  "use strict";
  // Read and cleared before the viewer starts, which would otherwise take the fragment for its own.
  var match = /(?:^#|&)handoff=([0-9a-f]{16,128})/.exec(window.location.hash);
  if (match) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#ui",
    persistAuthorization: false,
  });
  if (!match) {
    return;
  }
  function show(text) {
    var note = document.getElementById("signed-in");
    note.textContent = text;
    note.hidden = false;
  }
  fetch("/api/auth/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code: match[1] }),
  })
    .then(function (r) {
      return r.ok ? r.json() : Promise.reject(r.status);
    })
    .then(function (session) {
      ui.preauthorizeApiKey("admin_jwt", session.token);
      show("Signed in as " + session.subject + ": requests from this page carry the session.");
    })
    .catch(function () {
      show("That sign-in could not be completed; ask for a new link.");
    });
})();

// portcullis passkey ceremonies (DESIGN.md §10). Served from /_portcullis/static/ under the
// pages' CSP (script-src 'self'): no inline script, no framework, no network but our origin.
// A button [data-passkey] asks its options URL for a ceremony, runs it, and posts the answer
// in its form; errors go to the button's alert element. Without WebAuthn the button stays
// hidden and the page's note says so; the other factors on the page still work.
(function () {
  "use strict";

  function toBuf(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64u(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function created(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        attestationObject: toB64u(r.attestationObject),
        clientDataJSON: toB64u(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : undefined
      }
    };
  }

  function asserted(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        authenticatorData: toB64u(r.authenticatorData),
        clientDataJSON: toB64u(r.clientDataJSON),
        signature: toB64u(r.signature),
        userHandle: r.userHandle ? toB64u(r.userHandle) : null
      }
    };
  }

  function ceremony(kind, options) {
    var pk = options.publicKey;
    pk.challenge = toBuf(pk.challenge);
    if (kind === "register") {
      pk.user.id = toBuf(pk.user.id);
      (pk.excludeCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
      return navigator.credentials.create({ publicKey: pk }).then(created);
    }
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return navigator.credentials.get({ publicKey: pk }).then(asserted);
  }

  function wire(button) {
    var d = button.dataset;
    var alertBox = document.getElementById(d.alert);
    var note = document.getElementById(d.note);
    if (!window.PublicKeyCredential || !navigator.credentials) { return; }
    if (note) { note.hidden = true; }
    button.hidden = false;
    function fail(text) {
      if (alertBox) { alertBox.textContent = text; alertBox.hidden = false; }
      button.disabled = false;
    }
    button.addEventListener("click", function () {
      if (alertBox) { alertBox.hidden = true; }
      button.disabled = true;
      var body = new URLSearchParams();
      body.set("csrf_token", d.csrf);
      if (d.mode) { body.set("mode", d.mode); }
      fetch(d.options, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) {
          return r.json().then(function (j) {
            if (!r.ok) { throw new Error(j.detail || d.failed); }
            return j;
          }, function () { throw new Error(d.failed); });
        })
        .then(function (options) { return ceremony(d.passkey, options); })
        .then(function (answer) {
          var form = document.getElementById(d.form);
          form.elements.credential.value = JSON.stringify(answer);
          form.submit();
        })
        .catch(function (e) {
          var cancelled = e && (e.name === "NotAllowedError" || e.name === "AbortError");
          fail(cancelled ? d.cancelled : (e && e.name === "Error" && e.message) || d.failed);
        });
    });
  }

  document.querySelectorAll("button[data-passkey]").forEach(wire);
})();

/* billing-bot web page: the chat sends forms with fetch and appends the answers.
   No framework, no build step. Without JavaScript every form still posts normally. */
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var token = csrf ? csrf.getAttribute("content") : "";
  var transcript = document.getElementById("transcript");
  var inbox = document.getElementById("inbox");

  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token, "X-Requested-With": "fetch" }
    });
  }

  function problem(text) {
    var div = document.createElement("div");
    div.className = "turn";
    div.innerHTML = '<div class="msg bot"><div class="reply kind-error"><div class="text"></div></div></div>';
    div.querySelector(".text").textContent = text;
    transcript.appendChild(div);
    div.scrollIntoView({ block: "end" });
  }

  /* An older card of a case that has a newer card below: dim it, drop its buttons. */
  function supersede(node) {
    node.querySelectorAll(".case-card[data-case]").forEach(function (card) {
      var id = card.getAttribute("data-case");
      document.querySelectorAll('.transcript .case-card[data-case="' + id + '"]').forEach(function (old) {
        if (old === card || node.contains(old)) return;
        old.classList.add("superseded");
        var actions = old.querySelector(".actions");
        if (actions) actions.remove();
      });
    });
  }

  function send(form, submitter) {
    var body = new FormData(form, submitter || undefined);
    if (submitter && submitter.name === "action") body.append("label", submitter.textContent.trim());
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    return post(form.getAttribute("action") || "/chat/send", body)
      .then(function (resp) {
        return resp.text().then(function (text) {
          if (resp.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
          if (!resp.ok) { problem(text || ("HTTP " + resp.status)); return; }
          var content = fragment(text);
          var turn = content.firstElementChild;
          var again = content.querySelector("form.bot-form[data-errors]");
          if (again && form.classList.contains("bot-form") && form.getAttribute("data-form-id") === again.getAttribute("data-form-id")) {
            /* The same form came back with its errors: show them in place. */
            form.replaceWith(again);
            var bad = again.querySelector('[aria-invalid="true"]');
            if (bad) bad.focus();
            return;
          }
          if (form.classList.contains("bot-form")) form.classList.add("sent");
          transcript.appendChild(content);
          if (turn) { supersede(turn); turn.scrollIntoView({ block: "end" }); }
          var first = turn && turn.querySelector("form.bot-form input:not([type=hidden]), form.bot-form select, form.bot-form textarea");
          if (first) first.focus();
          refreshInbox();
        });
      })
      .catch(function (err) { problem("The billing desk could not be reached: " + err); })
      .finally(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        if (form.classList.contains("sent")) form.querySelectorAll("button, input, select, textarea").forEach(function (el) { el.disabled = true; });
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.hasAttribute("data-inbox-clear") && inbox) {
      event.preventDefault();
      post(form.action, new FormData(form)).then(function (r) { return r.text(); }).then(function (html) { inbox.innerHTML = html; });
      return;
    }
    if (!form.hasAttribute("data-chat") || !transcript) return;
    event.preventDefault();
    var submitter = event.submitter || null;
    var input = form.querySelector('input[name="text"]:not([type=hidden])');
    if (input && !input.value.trim()) return;
    send(form, submitter).then(function () {
      if (input) { input.value = ""; input.focus(); }
    });
  });

  function refreshInbox() {
    if (!inbox) return;
    fetch("/chat/inbox", { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var items = fragment(html);
        var now = inbox.querySelector("#inbox-items");
        var next = items.querySelector("#inbox-items");
        if (now && next && now.getAttribute("data-count") === next.getAttribute("data-count")) return;
        inbox.innerHTML = "";
        inbox.appendChild(items);
      })
      .catch(function () {});
  }

  if (inbox) setInterval(refreshInbox, 15000);

  if (transcript) {
    var open = transcript.getAttribute("data-open-case");
    var composer = document.getElementById("composer");
    if (open && composer) {
      composer.querySelector('input[name="text"]').value = "status " + open;
      send(composer, null).then(function () { composer.querySelector('input[name="text"]').value = ""; });
      /* The card is in the chat's history now: a reload must not ask for it again. */
      if (window.history && history.replaceState) history.replaceState(null, "", location.pathname);
    }
    var last = transcript.lastElementChild;
    if (last) last.scrollIntoView({ block: "end" });
  }
})();

// The Create form's number check as the operator types (progressive: the server checks again).
"use strict";
(function () {
  var form = document.querySelector("form[data-validate-url]");
  if (!form) return;
  var phone = form.querySelector("#phone");
  var msg = form.querySelector("#phone-error");
  var timer = null;
  var asked = 0;
  function check() {
    var value = phone.value.trim();
    if (!value) { msg.textContent = ""; msg.className = "field-msg"; phone.removeAttribute("aria-invalid"); return; }
    var q = new URLSearchParams({
      tenant: form.elements.tenant.value,
      service: form.elements.service.value,
      phone: value
    });
    var mine = ++asked;
    fetch(form.getAttribute("data-validate-url") + "?" + q.toString(), {
      headers: { Accept: "application/json" }, credentials: "same-origin"
    }).then(function (r) { return r.json(); }).then(function (answer) {
      if (mine !== asked) return;  // a later keystroke's answer wins
      msg.textContent = answer.message;
      msg.className = answer.ok ? "field-msg ok" : "field-msg error";
      if (answer.ok) phone.removeAttribute("aria-invalid");
      else phone.setAttribute("aria-invalid", "true");
    }).catch(function () { /* the server checks on submit */ });
  }
  phone.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  });
  phone.addEventListener("blur", check);
})();

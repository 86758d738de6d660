/* Copy buttons (`button.console-copy` with `data-copy`, or `data-copy-from` naming an element): the text is on the page already, so
   without JavaScript it can still be selected by hand. A static file, not an inline script,
   so the Content-Security-Policy keeps script-src 'self' (issue 12 §6). */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.console-copy").forEach(function (button) {
    button.addEventListener("click", function () {
      // data-copy-from="#id": copy that element's text, so a shown-once secret is in the page once.
      var source = button.getAttribute("data-copy-from");
      var text = source ? document.querySelector(source).textContent : button.getAttribute("data-copy");
      var label = button.textContent;
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      document.body.removeChild(area);
      done();
    });
  });
});

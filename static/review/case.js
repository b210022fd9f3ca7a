// Case page keys: j = next case, k = previous case (in the queue's order), a = jump to the adjudication.
// Links carry data-key; nothing happens while the user types in a form field.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var link = document.querySelector('a[data-key="' + event.key + '"]');
    if (!link) return;
    event.preventDefault();
    if (event.key === "a") {
      var first = document.querySelector('#adjudication input[name="radpeer"]');
      if (first) {
        first.scrollIntoView({ block: "center" });
        first.focus();
      }
      return;
    }
    window.location.assign(link.href);
  });
})();

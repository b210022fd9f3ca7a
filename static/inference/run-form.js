// The launch form of a re-inference run offers only the kinds the chosen model version can draft: each
// kind option lists the versions that draft it (data-versions, from the model cards). The server checks
// the pair again, so without this script a wrong pair is refused with a message, never run.
(function () {
  "use strict";
  function sync(model, kind) {
    let first = null;
    for (const option of kind.options) {
      const served = (option.dataset.versions || "").split(" ").includes(model.value);
      option.disabled = !served;
      option.hidden = !served;
      if (served && first === null) first = option;
    }
    const chosen = kind.selectedOptions[0];
    if ((!chosen || chosen.disabled) && first !== null) kind.value = first.value;
  }
  document.addEventListener("DOMContentLoaded", function () {
    const form = document.querySelector("[data-testid=run-form]");
    if (!form) return;
    const model = form.querySelector("select[name=model_version]");
    const kind = form.querySelector("select[name=kind]");
    if (!model || !kind) return;
    model.addEventListener("change", function () { sync(model, kind); });
    sync(model, kind);
  });
})();

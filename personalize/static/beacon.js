/* personalize beacon: reports clicks on [data-pz-decision] elements, and conversions through
   window.personalize.convert(decisionId, value), to <prefix>/collect with navigator.sendBeacon. */
(function () {
  "use strict";
  var me = document.currentScript;
  var url = (me && me.src ? me.src : "/_personalize/beacon.js").replace(/beacon\.js([?#].*)?$/, "collect");
  var sent = {};
  function send(id, type, value) {
    if (typeof id !== "string" || !id || sent[id + type]) return false;
    sent[id + type] = 1;
    var data = { decision_id: id, type: type };
    if (typeof value === "number" && isFinite(value)) data.value = value;
    var body = JSON.stringify(data);
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return true;
    try {
      fetch(url, { method: "POST", body: body, keepalive: true, credentials: "same-origin" });
    } catch (e) { return false; }
    return true;
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    var el = target && target.closest ? target.closest("[data-pz-decision]") : null;
    if (el) send(el.getAttribute("data-pz-decision"), "click");
  }, true);
  var api = window.personalize = window.personalize || {};
  api.convert = function (id, value) { return send(id, "conversion", value); };
  api.click = function (id) { return send(id, "click"); };
})();

// Steward's page statistics: pageviews, referrers, outbound links and custom events.
// No cookie, no storage, no identifier: the server counts a visitor by a hash of the
// day that it cannot link to another day. Include it with
// <script defer src="https://STEWARD/static/steward-analytics.js" data-site="HOST"></script>
// and send a custom event with steward("signup", {plan: "pro"}).
// It counts only where the visitor allowed statistics in Steward's cookie banner
// (steward-consent.js, window.stewardConsent), and sends the choice with each event;
// without a choice it sends only where the operator declared the statistics
// cookieless and aggregate-only (--analytics-cookieless: the server says so below).
(function () {
  var d = document, w = window, n = navigator, l = location, s = d.currentScript;
  if (!s) return;
  var api = new URL(s.src).origin + "/api/v1/events";
  var site = s.getAttribute("data-site") || l.hostname;
  // The server refuses to count these too; the script does not even send.
  if (n.globalPrivacyControl || n.doNotTrack == "1" || w.doNotTrack == "1") {
    w.steward = function () {};
    return;
  }
  var cookieless = /*cookieless*/ false, choice = "";
  function allowed() {
    return choice == "granted" || (!choice && cookieless);
  }
  function decide(c) {
    choice = c.decided ? (c.statistics ? "granted" : "refused") : "";
  }
  if (w.stewardConsent) decide(w.stewardConsent);
  d.addEventListener("steward:consent", function (ev) {
    var was = allowed();
    decide(ev.detail);
    if (!was && allowed()) pageview();
  });
  function send(kind, extra) {
    if (!allowed()) return;
    var e = { site: site, kind: kind, path: l.pathname + l.search };
    if (choice) e.consent = choice;
    for (var k in extra) e[k] = extra[k];
    var body = JSON.stringify(e);
    if (n.sendBeacon && n.sendBeacon(api, new Blob([body], { type: "text/plain" }))) return;
    fetch(api, { method: "POST", body: body, keepalive: true, mode: "no-cors", headers: { "Content-Type": "text/plain" } });
  }
  function pageview() {
    var r = d.referrer, e = {};
    if (r) {
      try {
        var u = new URL(r);
        if (u.host != l.host) e.referrer = u.origin + u.pathname;
      } catch (x) {}
    }
    send("pageview", e);
  }
  function click(ev) {
    var a = ev.target && ev.target.closest && ev.target.closest("a[href]");
    if (a && a.host && a.host != l.host && /^https?:$/.test(a.protocol)) {
      send("outbound", { name: a.protocol + "//" + a.host + a.pathname });
    }
  }
  d.addEventListener("click", click, true);
  d.addEventListener("auxclick", click, true);
  var push = history.pushState;
  if (push) {
    history.pushState = function () {
      push.apply(this, arguments);
      pageview();
    };
    w.addEventListener("popstate", pageview);
  }
  w.steward = function (name, props) {
    send("event", { name: name, props: props });
  };
  pageview();
})();

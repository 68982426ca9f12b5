// Steward's cookie banner, for the operator's other sites. No dependency. It asks once
// (strictly necessary, preferences, statistics, marketing; "Reject all" as easy as
// "Accept all"), keeps only the choice in a cookie of the site (steward_cookies=
// v1.p0.s1.m0, 180 days), and tells the page: window.stewardConsent and the
// "steward:consent" event. Global Privacy Control and Do Not Track refuse statistics
// and marketing whatever is chosen. Include it with
// <script defer src="https://STEWARD/static/steward-consent.js"></script>
// (data-policy="URL" names the cookie page; data-version="2" asks everyone again).
(function () {
  var d = document, w = window, n = navigator, s = d.currentScript, box, back;
  if (!s) return;
  var V = s.getAttribute("data-version") || "1";
  var policy = s.getAttribute("data-policy") || new URL(s.src).origin + "/privacy/cookies";
  var signal = n.globalPrivacyControl ? "Global Privacy Control" : n.doNotTrack == "1" || w.doNotTrack == "1" ? "Do Not Track" : "";
  var cats = ["preferences", "statistics", "marketing"];
  var names = ["Preferences", "Statistics", "Marketing"];

  function read() {
    var m = d.cookie.match(/(?:^|; *)steward_cookies=v([^.;]+)\.p([01])\.s([01])\.m([01])(;|$)/);
    return m && m[1] == V ? { preferences: m[2] == "1", statistics: m[3] == "1", marketing: m[4] == "1" } : null;
  }
  // publish tells the page the choice as honoured.
  function publish(c) {
    var o = { decided: !!c, signal: signal, open: open };
    for (var i = 0; i < 3; i++) o[cats[i]] = !!(c && c[cats[i]]) && !(signal && i);
    w.stewardConsent = o;
    d.dispatchEvent(new CustomEvent("steward:consent", { detail: o }));
  }
  function save(c) {
    if (signal) c.statistics = c.marketing = false;
    d.cookie = "steward_cookies=v" + V + ".p" + +!!c.preferences + ".s" + +!!c.statistics + ".m" + +!!c.marketing +
      "; Max-Age=15552000; Path=/; SameSite=Lax" + (location.protocol == "https:" ? "; Secure" : "");
    if (box) {
      box.remove();
      box = null;
      if (back && back.focus) back.focus();
    }
    publish(c);
  }
  function el(tag, css, text, parent) {
    var e = d.createElement(tag);
    if (css) e.style.cssText = css;
    if (text) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  var btn = "font:inherit;min-height:44px;min-width:8em;margin:4px 8px 0 0;padding:6px 14px;border:2px solid #1a1a1a;border-radius:4px;cursor:pointer;background:#fff;color:#1a1a1a";
  function button(text, parent, click) {
    var b = el("button", btn, text, parent);
    b.type = "button";
    b.onclick = click;
    return b;
  }
  // open shows the banner (again: the page may offer a link to change the choice).
  function open() {
    if (box) return;
    back = d.activeElement;
    var c = read() || {};
    box = el("div", "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;background:#fff;color:#1a1a1a;border-top:3px solid #1a1a1a;padding:12px 16px;font:16px/1.4 system-ui,sans-serif;max-height:80vh;overflow:auto");
    box.id = "steward-consent";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-labelledby", "steward-consent-title");
    box.setAttribute("aria-describedby", "steward-consent-text");
    box.tabIndex = -1;
    el("h2", "font-size:1.1em;margin:0 0 4px", "Cookies", box).id = "steward-consent-title";
    var p = el("p", "margin:0 0 8px", "This site uses strictly necessary cookies only, unless you allow more. " +
      (signal ? "Your browser sends " + signal + ", and we honour it: statistics and marketing stay off. " : ""), box);
    p.id = "steward-consent-text";
    var a = el("a", "color:#0b4ea2", "Every cookie we set", p);
    a.href = policy;
    var f = el("fieldset", "border:1px solid #1a1a1a;margin:0 0 8px;padding:4px 12px", "", box);
    f.hidden = true;
    f.id = "steward-consent-choose";
    el("legend", "", "Choose by category", f);
    var boxes = [];
    for (var i = -1; i < 3; i++) {
      var l = el("label", "display:block;padding:4px 0", "", f);
      var x = el("input", "width:20px;height:20px;margin:0 8px 0 0;vertical-align:middle", "", l);
      x.type = "checkbox";
      x.name = i < 0 ? "necessary" : cats[i];
      x.checked = i < 0 || (!!c[cats[i]] && !(signal && i));
      x.disabled = i < 0 || !!(signal && i);
      l.appendChild(d.createTextNode(i < 0 ? "Strictly necessary (always on)" : names[i]));
      if (i >= 0) boxes.push(x);
    }
    var row = el("div", "", "", box);
    button("Accept all", row, function () {
      save({ preferences: 1, statistics: 1, marketing: 1 });
    });
    button("Reject all", row, function () {
      save({});
    });
    var choose = button("Choose", row, function () {
      if (f.hidden) {
        f.hidden = false;
        choose.textContent = "Save my choice";
        choose.setAttribute("aria-expanded", "true");
        boxes[0].focus();
        return;
      }
      save({ preferences: boxes[0].checked, statistics: boxes[1].checked, marketing: boxes[2].checked });
    });
    choose.setAttribute("aria-expanded", "false");
    choose.setAttribute("aria-controls", f.id);
    d.body.appendChild(box);
    box.focus();
  }
  var c = read();
  publish(c);
  if (!c) {
    if (d.body) open();
    else d.addEventListener("DOMContentLoaded", open);
  }
})();

// Light / dark theme (docs/web.md#design). Runs in <head> so the page never flashes the wrong theme.
(function () {
  var KEY = "theme";
  var root = document.documentElement;
  function system() { return window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"; }
  function apply(theme) { root.setAttribute("data-theme", theme); }
  var saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  apply(saved || system());
  window.toggleTheme = function () {
    var next = root.getAttribute("data-theme") === "dark" ? "light" : "dark";
    apply(next);
    try { localStorage.setItem(KEY, next); } catch (e) { /* storage disabled */ }
    document.dispatchEvent(new CustomEvent("themechange", { detail: next }));
  };
})();

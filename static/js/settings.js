// The settings page (docs/web.md#settings): the levels table's rows, the grid source switch, the secret's
// reveal button, and the live leg preview, which sends the form's grid to POST /api/grid/preview.
(function () {
  "use strict";
  var form = document.getElementById("engine-form");

  // ---- secret reveal: <button data-reveal="#input"> switches the input between hidden and shown
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-reveal]");
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-reveal"));
    if (!input) return;
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    button.textContent = show ? "Hide" : "Show";
    button.setAttribute("aria-pressed", show ? "true" : "false");
  });

  if (!form) return;
  var table = document.getElementById("levels-table");
  var body = table && table.tBodies[0];

  // ---- grid source: the levels table or the 3Commas generator
  function source() {
    var checked = form.querySelector("input[name=grid_source]:checked");
    return checked ? checked.value : "levels";
  }
  function showSource() {
    form.querySelectorAll("[data-grid-source]").forEach(function (block) {
      block.hidden = block.getAttribute("data-grid-source") !== source();
    });
  }
  form.addEventListener("change", function (e) {
    if (e.target.name === "grid_source") showSource();
  });

  // ---- levels rows: add, remove, renumber (names are levels[i].key, the paths the validation reports)
  function renumber() {
    Array.prototype.forEach.call(body.rows, function (row, i) {
      var no = row.querySelector(".level-no");
      if (no) no.textContent = i;
      row.querySelectorAll("input").forEach(function (input) {
        input.name = input.name.replace(/^levels\[\d+\]/, "levels[" + i + "]");
      });
    });
  }
  var add = document.getElementById("add-level");
  if (add && body) {
    add.addEventListener("click", function () {
      var last = body.rows[body.rows.length - 1];
      var row = last.cloneNode(true);
      row.querySelectorAll("input").forEach(function (input) {
        input.value = "";
        input.removeAttribute("aria-invalid");
      });
      row.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
      body.appendChild(row);
      renumber();
      row.querySelector("input").focus();
    });
  }
  if (body) {
    body.addEventListener("click", function (e) {
      var button = e.target.closest("[data-remove-level]");
      if (!button) return;
      var row = button.closest("tr");
      if (body.rows.length > 1) row.remove();
      else row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      renumber();
      schedule();
    });
  }

  // ---- live leg preview
  var status = document.getElementById("preview-status");
  var legsTable = document.getElementById("preview-legs");
  var exchange = document.getElementById("preview-exchange");
  var symbol = document.getElementById("preview-symbol");
  var price = document.getElementById("preview-price");
  var pyramid = document.getElementById("preview-pyramid");
  var GRID_KEYS = ["capital_usd", "max_pyramids", "entry_order_type", "tp_mode", "tp_aggregate_percent",
    "cancel_dca_beyond_percent", "pyramid_specific_levels", "pyramid_capitals"];
  var WHOLE = /^-?\d+$/;

  function value(name) {
    var input = form.elements.namedItem(name);
    return input ? String(input.value).trim() : "";
  }
  // The grid part of the form as the config JSON the API takes (the server validates every value).
  function gridConfig() {
    var config = {};
    if (source() === "generator") {
      var gen = {};
      form.querySelectorAll("[name^='generator.']").forEach(function (input) {
        var key = input.name.slice("generator.".length), text = input.value.trim();
        if (text === "") return;
        gen[key] = key === "max_safety_orders" && WHOLE.test(text) ? parseInt(text, 10) : text;
      });
      config.generator = gen;
    } else {
      var levels = [];
      Array.prototype.forEach.call(body.rows, function (row) {
        var level = {}, any = false;
        row.querySelectorAll("input").forEach(function (input) {
          var key = input.name.replace(/^levels\[\d+\]\./, ""), text = input.value.trim();
          level[key] = text;
          if (text !== "") any = true;
        });
        if (any) levels.push(level);
      });
      config.levels = levels;
    }
    GRID_KEYS.forEach(function (key) {
      var text = value(key);
      if (text === "") return;
      if (key === "max_pyramids") config[key] = WHOLE.test(text) ? parseInt(text, 10) : text;
      else if (key === "pyramid_specific_levels" || key === "pyramid_capitals") {
        try { config[key] = JSON.parse(text); } catch (err) { config[key] = text; }
      } else config[key] = text;
    });
    return config;
  }

  function csrf() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function cell(row, text, cls) {
    var td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
  }
  function describe(body) {
    if (body && body.fields) {
      return Object.keys(body.fields).map(function (k) {
        var why = body.fields[k];
        return k.replace(/^config\./, "") + ": " + (Array.isArray(why) ? why.join(" ") : why);
      }).join("; ");
    }
    return (body && body.detail) || "the preview failed";
  }

  // Display only: an amount to a few places (the API's values are exact decimal strings).
  function places(text) {
    var dot = String(text).indexOf(".");
    return dot < 0 ? 0 : String(text).length - dot - 1;
  }
  function fixed(text, digits) {
    var number = parseFloat(text);
    return text === undefined || text === null || isNaN(number) ? "" : number.toFixed(digits);
  }

  var timer = null, seq = 0;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(preview, 300);
  }
  function preview() {
    var entry = price.value.trim();
    if (!entry) {
      status.textContent = "Type an entry price to see the legs.";
      legsTable.hidden = true;
      return;
    }
    var mine = ++seq;
    var request = {config: gridConfig(), entry_price: entry, exchange: exchange.value, symbol: symbol.value.trim()};
    var index = pyramid.value.trim();
    if (WHOLE.test(index)) request.pyramid_index = parseInt(index, 10);
    status.textContent = "Computing…";
    fetch("/api/grid/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf(), "Accept": "application/json"},
      body: JSON.stringify(request)
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (result) {
      if (mine !== seq) return;  // a newer request is on its way
      if (!result.ok) {
        legsTable.hidden = true;
        status.textContent = "No preview: " + describe(result.data);
        status.className = "small neg";
        return;
      }
      var tbody = legsTable.tBodies[0];
      tbody.innerHTML = "";
      var total = 0, start = parseFloat(entry);
      result.data.forEach(function (leg) {
        var row = tbody.insertRow();
        var gap = start ? ((parseFloat(leg.price) / start - 1) * 100).toFixed(2) : "";
        cell(row, leg.level);
        cell(row, leg.price, "num");
        cell(row, gap, "num");
        cell(row, leg.quantity, "num");
        cell(row, fixed(leg.notional, 2), "num");
        cell(row, leg.tp_price, "num");
        cell(row, fixed(leg.cum_avg_price, places(leg.price)), "num hide-narrow");
        total += parseFloat(leg.notional) || 0;
      });
      document.getElementById("preview-total").textContent = total.toFixed(2);
      legsTable.hidden = false;
      status.className = "small muted";
      status.textContent = result.data.length + " legs on " + request.symbol + " at " + entry + ".";
    }).catch(function () {
      if (mine !== seq) return;
      status.className = "small neg";
      status.textContent = "No preview: the server did not answer.";
    });
  }
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  [exchange, symbol, price, pyramid].forEach(function (el) {
    el.addEventListener("input", schedule);
    el.addEventListener("change", schedule);
  });
  showSource();
  if (price.value.trim()) preview();
})();

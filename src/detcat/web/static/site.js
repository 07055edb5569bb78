// detcat: the ATT&CK matrix vendor filter, the coverage form and the static
// export's search.
// Catalog data reaches the page only through textContent and setAttribute on
// hrefs we built ourselves, never through innerHTML.
(function () {
  "use strict";

  // Same buckets as templating.HEAT (upper bounds of rule counts).
  var HEAT = [0, 2, 5, 10, 25, 50, 100];

  function heat(n) {
    for (var i = 0; i < HEAT.length; i++) if (n <= HEAT[i]) return i;
    return HEAT.length;
  }

  function matrixFilter() {
    var select = document.getElementById("vendor-filter");
    if (!select) return;
    select.addEventListener("change", function () {
      var vendor = select.value;
      document.querySelectorAll(".matrix .cell").forEach(function (cell) {
        var n = JSON.parse(cell.getAttribute("data-rules"))[vendor] || 0;
        cell.className = cell.className.replace(/\bh\d+\b/, "h" + heat(n));
        cell.querySelector(".n").textContent = String(n);
      });
    });
  }

  // Tokens as SQLite FTS5's unicode61 tokenizer makes them: runs of letters and
  // digits, case-folded, diacritics removed (the index holds them pre-made).
  function tokens(text) {
    var plain = text.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
    return plain.match(/[\p{L}\p{N}]+/gu) || [];
  }

  var FIELD_TERM = /^[A-Za-z_@][\w.@\-\[\]"]*:(?!\/)./;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function resultItem(r, techniqueHrefs) {
    var li = el("li");
    li.appendChild(el("span", "vendor", r[0]));
    li.appendChild(document.createTextNode(" "));
    var a = el("a", "rule", r[2]);
    a.setAttribute("href", r[3]);
    li.appendChild(a);
    var techs = el("span", "techs");
    r[4].forEach(function (t) {
      var link = el("a", "technique", t);
      link.setAttribute("href", techniqueHrefs[t]);
      techs.appendChild(document.createTextNode(" "));
      techs.appendChild(link);
    });
    li.appendChild(techs);
    return li;
  }

  function staticSearch() {
    var list = document.getElementById("search-results");
    var index = window.DETCAT_INDEX;
    if (!list || !index) return;
    var query = new URLSearchParams(window.location.search).get("q") || "";
    var input = document.querySelector('input[name="q"]');
    if (input) input.value = query;
    var words = query.split(/\s+/).filter(Boolean);
    var structured = words.filter(function (w) { return FIELD_TERM.test(w); });
    var wanted = [].concat.apply([], words.filter(function (w) {
      return !FIELD_TERM.test(w);
    }).map(tokens));
    var summary = document.getElementById("search-summary");
    if (!wanted.length) {
      summary.textContent = structured.length
        ? "field:value search needs the server (detcat serve)." : "";
      return;
    }
    var found = index.rules.filter(function (r) {
      if (!r.tokenSet) r.tokenSet = new Set(r[5].split(" "));
      return wanted.every(function (t) { return r.tokenSet.has(t); });
    });
    summary.textContent = found.length + " rules match " + JSON.stringify(query) +
      (structured.length ? " (field:value terms ignored: they need the server)" : "");
    found.forEach(function (r) { list.appendChild(resultItem(r, index.techniques)); });
  }

  // The coverage page recomputes on the server for the ticked events.
  function coverageForm() {
    var form = document.getElementById("coverage-form");
    if (!form) return;
    form.addEventListener("change", function (e) {
      if (e.target.type === "checkbox" || e.target.tagName === "SELECT") form.requestSubmit();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    matrixFilter();
    coverageForm();
    staticSearch();
  });
})();

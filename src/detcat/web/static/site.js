// detcat: the ATT&CK matrix vendor filter, the coverage form and the static
// export's search (Pagefind).
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

  // -- the static export's search: Pagefind over one record per rule ----------
  // static_search.py writes each value a rule checks as `id:word` tokens, the id
  // standing for the field's name (pagefind/fields.json maps lower-case names to
  // ids); a `field:value` term becomes the same tokens, so it matches values
  // whose words start with the words typed. Vendor and technique are Pagefind
  // filters.

  var FIELD_TERM = /^([A-Za-z_@][\w.@\-\[\]"]*):(.*)$/;
  var SHOWN = 50; // like the server's default limit

  // Words as static_search.py indexes them: runs of letters, digits and ._-@$
  var WORD = /[\p{L}\p{N}\p{M}_.\-@$]+/gu;

  function valueWords(value) {
    return value.toLowerCase().match(WORD) || [];
  }

  // Words as the shell splits them (quotes group, and are dropped), like the
  // server's shlex: plain words, and field terms as {field, words}.
  function parseQuery(query) {
    var terms = [], m, word = /(?:[^\s"']+|"[^"]*"|'[^']*')+/g;
    while ((m = word.exec(query))) {
      var tok = m[0].replace(/["']/g, "");
      var field = FIELD_TERM.exec(tok);
      if (field && !field[2]) {
        throw new Error(tok + " has no value: write " + tok + "VALUE (e.g. process.name:anydesk)");
      }
      if (field && field[2].charAt(0) !== "/") {
        terms.push({ field: field[1].toLowerCase(), words: valueWords(field[2]) });
      } else {  // plain words as static_search.text_words writes them
        (tok.match(WORD) || []).forEach(function (w) {
          w = w.replace(/^\.+|\.+$/g, "");
          if (w) terms.push(w);
        });
      }
    }
    return terms;
  }

  var fieldIds = null;

  // The Pagefind words of parsed terms; null when a field term names a field no
  // rule checks (nothing can match).
  function pagefindTerms(terms, pagefindUrl) {
    var needIds = terms.some(function (t) { return typeof t !== "string"; });
    if (needIds && !fieldIds) {
      fieldIds = fetch(new URL("fields.json", pagefindUrl)).then(function (resp) {
        if (!resp.ok) throw new Error("fields.json: " + resp.status);
        return resp.json();
      });
    }
    return Promise.resolve(needIds ? fieldIds : {}).then(function (ids) {
      var words = [];
      for (var i = 0; i < terms.length; i++) {
        var t = terms[i];
        if (typeof t === "string") {
          words.push(t);
        } else if (!Object.prototype.hasOwnProperty.call(ids, t.field)) {
          return null;
        } else {
          t.words.forEach(function (w) { words.push(ids[t.field] + ":" + w); });
        }
      }
      return words;
    });
  }

  // Pagefind's results for parsed terms, in the server's order. Pagefind extends
  // a typed word to longer ones only within the index chunks it loads (the one
  // holding the word itself), so the chunk where the last extension would sit is
  // loaded first.
  function findRules(pagefindUrl, terms, filters) {
    return Promise.all([import(pagefindUrl.href), pagefindTerms(terms, pagefindUrl)])
      .then(function (loaded) {
        var pagefind = loaded[0], words = loaded[1];
        if (words === null) return { results: [] };
        var ends = words.map(function (w) { return pagefind.preload(w + "\uffff"); });
        return Promise.all(ends).then(function () {
          return pagefind.search(words.length ? words.join(" ") : null,
            { filters: filters, sort: { order: "asc" } });
        });
      });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function resultItem(data, root) {
    var li = el("li");
    li.appendChild(el("span", "vendor", data.meta.vendor));
    li.appendChild(document.createTextNode(" "));
    var a = el("a", "", data.meta.title);
    a.setAttribute("href", root + data.url.replace(/^\//, ""));
    li.appendChild(a);
    var techs = el("span", "techs");
    (data.meta.techniques || "").split(" ").filter(Boolean).forEach(function (t) {
      var link = el("a", "technique", t);
      link.setAttribute("href", root + "techniques/" + t + ".html");
      techs.appendChild(document.createTextNode(" "));
      techs.appendChild(link);
    });
    li.appendChild(techs);
    return li;
  }

  // What a result shows: static_search.py keeps each result's [url, title,
  // vendor, techniques] in pagefind/results/<first two characters of its id's
  // hash>.json (in place of Pagefind's file per result), read once each.
  var resultFiles = {};

  function resultData(pagefindUrl, id) {
    var name = id.split("_").pop().slice(0, 2);
    if (!resultFiles[name]) {
      resultFiles[name] = fetch(new URL("results/" + name + ".json", pagefindUrl))
        .then(function (resp) {
          if (!resp.ok) throw new Error("results/" + name + ".json: " + resp.status);
          return resp.json();
        });
    }
    return resultFiles[name].then(function (entries) {
      var e = entries[id];
      return { url: e[0], meta: { title: e[1], vendor: e[2], techniques: e[3] } };
    });
  }

  function staticSearch() {
    var list = document.getElementById("search-results");
    if (!list || !list.hasAttribute("data-pagefind")) return;
    var summary = document.getElementById("search-summary");
    var root = list.getAttribute("data-root");
    var pagefindUrl = new URL(list.getAttribute("data-pagefind"), window.location.href);
    // The same search for scripts and tests: Pagefind's results ({id} each).
    window.detcatSearch = function (q, f) {
      return Promise.resolve().then(function () {
        return findRules(pagefindUrl, parseQuery(q), f || {});
      });
    };
    var params = new URLSearchParams(window.location.search);
    var query = params.get("q") || "";
    var filters = {};
    ["vendor", "technique"].forEach(function (name) {
      var value = (params.get(name) || "").trim();
      var input = document.querySelector('[name="' + name + '"]');
      if (input) input.value = value;
      if (value) filters[name] = name === "technique" ? value.toUpperCase() : value;
    });
    document.querySelectorAll('input[name="q"]').forEach(function (i) { i.value = query; });
    var terms;
    try {
      terms = parseQuery(query);
    } catch (e) {
      summary.textContent = e.message;
      return;
    }
    if (!terms.length && !Object.keys(filters).length) return;
    if (window.location.protocol === "file:") {
      summary.textContent = "Search runs over HTTP only (browsers block it from files): " +
        "serve this folder, e.g. python3 -m http.server, and open search.html there.";
      return;
    }
    findRules(pagefindUrl, terms, filters)
      .then(function (found) {
        var shown = found.results.slice(0, SHOWN);
        var data = shown.map(function (r) { return resultData(pagefindUrl, r.id); });
        return Promise.all(data).then(function (rows) {
          summary.textContent = found.results.length + " rules match " + JSON.stringify(query) +
            (shown.length < found.results.length ? " (first " + shown.length + " shown)" : "");
          rows.forEach(function (d) { list.appendChild(resultItem(d, root)); });
        });
      })
      .catch(function (e) { summary.textContent = "Search failed: " + e; });
  }

  // A technique page lists each rule once; an indicator row names its rules by
  // position in that list (data-rules) and shows them when opened.
  function indicatorRules() {
    document.querySelectorAll("details[data-rules]").forEach(function (details) {
      details.addEventListener("toggle", function () {
        if (!details.open || details.querySelector("ul")) return;
        var list = el("ul", "rules");
        details.getAttribute("data-rules").split(" ").filter(Boolean).forEach(function (i) {
          var item = document.querySelector('#rules li[data-r="' + i + '"]');
          if (!item) return;
          var heading = item.parentElement.previousElementSibling;
          var li = el("li");
          li.appendChild(el("span", "vendor", heading ? heading.firstChild.textContent.trim() : ""));
          li.appendChild(document.createTextNode(" "));
          li.appendChild(item.querySelector(":scope > a").cloneNode(true));
          list.appendChild(li);
        });
        details.appendChild(list);
      });
    });
  }

  // The coverage page recomputes on the server for the ticked events.
  function coverageForm() {
    var form = document.getElementById("coverage-form");
    if (!form) return;
    form.addEventListener("change", function (e) {
      if (e.target.type === "checkbox" || e.target.tagName === "SELECT") form.requestSubmit();
    });
  }

  // A static rule, field or event page holds many articles; opened at one, the
  // tab is named after it. (By the URL's fragment: :target is not yet set when
  // the page has just loaded.)
  function articleTitle() {
    var article = document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
    var heading = article && article.matches("main > article") && article.querySelector("h1");
    if (heading) document.title = heading.textContent + " · detcat";
  }

  window.addEventListener("hashchange", articleTitle);
  document.addEventListener("DOMContentLoaded", function () {
    articleTitle();
    matrixFilter();
    coverageForm();
    indicatorRules();
    staticSearch();
  });
})();

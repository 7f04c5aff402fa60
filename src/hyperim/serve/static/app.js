// The web page of `hyperim serve`: POST /v1/suggest, then hand the answer to every renderer.
// A further panel (the Poincaré disk) registers itself with hyperim.addRenderer(fn), where
// fn(text, results) draws it; nothing here needs to change for it.
"use strict";

const hyperim = (() => {
  const renderers = [];
  // the library's tokenizer (hyperim.data.reader.tokenize), to find evidence words in the text
  const TOKEN = /[a-z0-9]+(?:[.+#'_-][a-z0-9]+)*(?:\+\+|#)?/g;

  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
      '"': "&quot;", "'": "&#39;" })[c]);
  }

  function highlight(text, results) {
    const labelsOf = new Map(); // evidence word -> the labels it speaks for
    for (const r of results) {
      for (const w of r.evidence) {
        if (!labelsOf.has(w)) labelsOf.set(w, []);
        labelsOf.get(w).push(r.label);
      }
    }
    const lower = text.toLowerCase(); // same length as text for the scripts tokenize handles
    let html = "", last = 0, m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(lower)) !== null) {
      const labels = labelsOf.get(m[0]);
      if (!labels) continue;
      html += escapeHtml(text.slice(last, m.index));
      const word = text.slice(m.index, m.index + m[0].length);
      html += `<mark data-word="${escapeHtml(m[0])}" title="${escapeHtml(labels.join(", "))}">` +
        `${escapeHtml(word)}</mark>`;
      last = m.index + m[0].length;
    }
    return html + escapeHtml(text.slice(last));
  }

  function renderHighlight(text, results) {
    const box = document.getElementById("highlighted");
    box.classList.remove("muted");
    box.innerHTML = highlight(text, results);
  }

  function renderResults(text, results) {
    const list = document.getElementById("results");
    list.innerHTML = "";
    if (results.length === 0) {
      list.innerHTML = '<li class="muted">No label reaches the threshold.</li>';
      return;
    }
    for (const r of results) {
      const li = document.createElement("li");
      li.className = "result";
      li.dataset.label = r.label;
      const pct = (100 * r.score).toFixed(1);
      li.innerHTML =
        `<span class="label">${escapeHtml(r.label)}</span> <span class="score">${pct} %</span>` +
        `<div class="bar"><span style="width:${pct}%"></span></div>` +
        `<div class="evidence">${r.evidence.map(escapeHtml).join(", ") || "no evidence words"}</div>`;
      // hovering a label marks its evidence words in the text
      li.addEventListener("mouseenter", () => mark(r.evidence, li, true));
      li.addEventListener("mouseleave", () => mark(r.evidence, li, false));
      list.appendChild(li);
    }
  }

  function mark(words, li, on) {
    li.classList.toggle("active", on);
    for (const el of document.querySelectorAll("#highlighted mark")) {
      el.classList.toggle("active", on && words.includes(el.dataset.word));
    }
  }

  function showError(message) {
    const p = document.getElementById("error");
    p.textContent = message || "";
    p.hidden = !message;
  }

  async function suggest(event) {
    event.preventDefault();
    const text = document.getElementById("text").value;
    const button = document.getElementById("suggest");
    const body = {
      text,
      k: parseInt(document.getElementById("k").value, 10) || 10,
      threshold: parseFloat(document.getElementById("threshold").value) || 0,
    };
    button.disabled = true;
    showError("");
    try {
      const response = await fetch("/v1/suggest", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      for (const render of renderers) render(text, answer.results);
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  }

  async function loadInfo() {
    try {
      const health = await (await fetch("/v1/health")).json();
      document.getElementById("model-info").textContent =
        `${health.model_type} model, ${health.labels} labels`;
    } catch (err) {
      showError(`the server does not answer: ${err.message}`);
    }
  }

  renderers.push(renderResults, renderHighlight);
  document.getElementById("suggest-form").addEventListener("submit", suggest);
  loadInfo();
  return { addRenderer: (fn) => renderers.push(fn), escapeHtml };
})();

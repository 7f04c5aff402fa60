// The Poincaré-disk panel of the page: GET /v1/disk/labels once (label points, hierarchy
// edges as SVG geodesic arcs, the view box), then for each text POST /v1/disk (its encoded
// words and predicted labels), drawn as an inline SVG. Label points are circle.label-point,
// word points rect.word-point, predicted labels circle.label-point.predicted.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const DEPTH_COLOURS = ["#3559c7", "#2a9d8f", "#e9a23b", "#b5179e", "#6c757d"];
  let labels = null; // the answer of /v1/disk/labels, or {note} when the model has no disk

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  async function errorOf(response) {
    try { return (await response.json()).error || `HTTP ${response.status}`; }
    catch (_) { return `HTTP ${response.status}`; }
  }

  async function loadLabels() {
    const response = await fetch("/v1/disk/labels");
    if (response.status === 409) return { note: await errorOf(response) };
    if (!response.ok) throw new Error(await errorOf(response));
    return response.json();
  }

  function overlaps(a, b) {
    return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  }

  // names: predicted labels always, then top-level labels (nearest the centre first) where
  // they overlap no name kept before, measured in the drawing itself
  function drawNames(svg, group, points, predicted, unit) {
    const kept = [];
    const order = [...predicted.map((p) => ({ i: p.index, cls: "name predicted" }))];
    const top = points.map((p, i) => ({ p, i })).filter((o) => o.p.top)
      .sort((a, b) => (a.p.x ** 2 + a.p.y ** 2) - (b.p.x ** 2 + b.p.y ** 2));
    const named = new Set(order.map((o) => o.i));
    for (const o of top) if (!named.has(o.i)) order.push({ i: o.i, cls: "name top" });
    for (const { i, cls } of order) {
      const p = points[i];
      const text = el("text", { x: p.x + 0.9 * unit, y: p.y - 0.6 * unit, class: cls,
        "font-size": 11 * unit, "stroke-width": 2.5 * unit, "data-label": p.label }, group);
      text.textContent = p.label;
      const box = text.getBBox();
      const mustShow = cls.includes("predicted");
      if (!mustShow && kept.some((b) => overlaps(b, box))) { text.remove(); continue; }
      kept.push(box);
    }
  }

  function draw(panel, doc) {
    const [vx, vy, vw, vh] = labels.view;
    const unit = vw / 560; // one pixel of the 560-pixel-wide drawing, in disk units
    const svg = el("svg", { id: "disk", viewBox: labels.view.join(" "), role: "img",
      "aria-label": "labels and the document's words in the Poincaré disk" });
    panel.appendChild(svg);
    const clip = el("clipPath", { id: "disk-view" }, el("defs", {}, svg));
    el("rect", { x: vx, y: vy, width: vw, height: vh }, clip);
    const g = el("g", { "clip-path": "url(#disk-view)" }, svg);
    if (labels.geometry === "poincare") {
      el("circle", { cx: 0, cy: 0, r: 1, class: "boundary", "stroke-width": 1.5 * unit }, g);
    }
    const edges = el("g", { class: "edges", "stroke-width": 0.7 * unit }, g);
    for (const d of labels.edges) el("path", { d, class: "edge" }, edges);
    const predicted = new Set(doc.predicted.map((p) => p.index));
    const nearest = new Map(labels.points.map((p, i) => [p.label, i]));
    const links = el("g", { class: "links", "stroke-width": 0.6 * unit }, g);
    for (const w of doc.words) {
      const p = labels.points[nearest.get(w.nearest)];
      el("line", { x1: w.x, y1: w.y, x2: p.x, y2: p.y, class: "link" }, links);
    }
    const dots = el("g", { class: "labels" }, g);
    labels.points.forEach((p, i) => {
      const c = el("circle", { cx: p.x, cy: p.y, r: (p.top ? 3.2 : 2.2) * unit,
        fill: DEPTH_COLOURS[Math.min(p.depth, DEPTH_COLOURS.length - 1)],
        class: "label-point" + (predicted.has(i) ? " predicted" : ""), "data-label": p.label,
        "data-depth": p.depth }, dots);
      el("title", {}, c).textContent = `${p.label} (depth ${p.depth})`;
    });
    for (const i of predicted) { // on top, ringed
      const p = labels.points[i];
      el("circle", { cx: p.x, cy: p.y, r: 5.5 * unit, class: "ring", "stroke-width": 2 * unit }, dots);
    }
    const words = el("g", { class: "words" }, g);
    const s = 5 * unit;
    for (const w of doc.words) {
      const r = el("rect", { x: w.x - s / 2, y: w.y - s / 2, width: s, height: s,
        transform: `rotate(45 ${w.x} ${w.y})`, class: "word-point", "data-word": w.word,
        "stroke-width": 0.6 * unit }, words);
      el("title", {}, r).textContent = `${w.word} → ${w.nearest}`;
    }
    drawNames(svg, el("g", { class: "names" }, g), labels.points, doc.predicted, unit);
  }

  function legend(panel, doc) {
    const p = document.createElement("p");
    p.className = "muted disk-legend";
    const depths = Array.from({ length: Math.min(labels.max_depth, DEPTH_COLOURS.length - 1) + 1 },
      (_, d) => `<span class="swatch" style="background:${DEPTH_COLOURS[d]}"></span>depth ${d}`);
    const esc = hyperim.escapeHtml;
    p.innerHTML = `labels by depth: ${depths.join(" ")}<br>` +
      `<span class="swatch word"></span>the text's ${doc.words.length} encoded words, each linked ` +
      `to its nearest label<br><span class="swatch ring"></span>the predicted labels, named<br>` +
      `${labels.points.length} labels, ${labels.edges.length} hierarchy edges (geodesics); ` +
      `${esc(labels.projection)}${labels.zoomed ? ", zoomed on the labels" : ""}`;
    panel.appendChild(p);
  }

  function note(panel, message) {
    const p = document.createElement("p");
    p.className = "muted disk-note";
    p.textContent = `No disk for this model: ${message}`;
    panel.appendChild(p);
  }

  async function renderDisk(text, results) {
    const panel = document.getElementById("disk-area");
    try {
      if (labels === null) labels = await loadLabels();
      if (labels.note) { panel.innerHTML = ""; note(panel, labels.note); return; }
      const k = Math.max(results.length, 1);
      const response = await fetch("/v1/disk", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text, k }),
      });
      panel.innerHTML = "";
      if (response.status === 409) { note(panel, await errorOf(response)); return; }
      if (!response.ok) throw new Error(await errorOf(response));
      const doc = await response.json();
      const shown = new Set(results.map((r) => r.label)); // the labels listed, above threshold
      doc.predicted = doc.predicted.filter((p) => shown.has(p.label));
      draw(panel, doc);
      legend(panel, doc);
    } catch (err) {
      panel.innerHTML = "";
      note(panel, err.message);
    }
  }

  hyperim.addRenderer(renderDisk);
})();

// xinc canvas explorer (docs/formats.md §11). No library: data files are scripts that call
// XINC.add(path, data) (a page opened from file:// may not fetch()), arrays are deflated and
// inflated with the browser's DecompressionStream, and images are only shown, never read
// (a file:// image drawn on a canvas taints it), so maps are tiles of a palette-PNG atlas.
"use strict";
(() => {
  const M = window.XINC_MANIFEST;
  const OVERLAYS = [  // name, label, per frame or per layer
    ["instances", "instances", "frame"], ["rgb", "RGB clusters", "frame"],
    ["gabor", "Gabor clusters", "frame"], ["grid", "grid cells", "frame"],
    ["npp10", "neurons/pixel τ0.1", "layer"], ["npp50", "neurons/pixel τ0.5", "layer"],
    ["heat", "Σ|C| heat", "layer"]];
  const TYPES = {uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array};
  const NONE = {uint8: 255, uint16: 65535, uint32: 4294967295};  // "no neuron" in top-k ids
  const ARCH = {nerv: "NeRV", ffn: "FFN"};
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) node.append(child);
    return node;
  };

  // ------------------------------------------------------------------ data files
  const scripts = new Map();  // src -> Promise of its data
  const waiting = new Map();  // src -> resolve
  window.XINC = {add(key, data) { const done = waiting.get(key); waiting.delete(key); if (done) done(data); }};

  function load(src) {
    if (!scripts.has(src)) {
      scripts.set(src, new Promise((resolve, reject) => {
        waiting.set(src, resolve);
        const tag = el("script", {src});
        tag.onerror = () => { waiting.delete(src); scripts.delete(src); reject(new Error(`cannot load ${src}`)); };
        tag.onload = () => { if (waiting.delete(src)) reject(new Error(`${src} holds no XINC.add call`)); };
        document.head.append(tag);
      }));
    }
    return scripts.get(src);
  }

  const arrays = new WeakMap();  // packed array -> Promise of its typed array
  function unpack(packed) {  // base64 -> inflate -> (undo byte planes) -> typed array
    if (!arrays.has(packed)) {
      arrays.set(packed, (async () => {
        const text = atob(packed.data);
        const bytes = new Uint8Array(text.length);
        for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
        const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
        let raw = new Uint8Array(await new Response(stream).arrayBuffer());
        const Type = TYPES[packed.dtype], size = Type.BYTES_PER_ELEMENT;
        if (packed.planes) {
          const n = raw.length / size, joined = new Uint8Array(raw.length);
          for (let b = 0; b < size; b++) for (let i = 0; i < n; i++) joined[i * size + b] = raw[b * n + i];
          raw = joined;
        }
        return new Type(raw.buffer);
      })());
    }
    return arrays.get(packed);
  }

  // ------------------------------------------------------------------ state and URL hash
  const videoKey = (v) => `${v.dataset}/${v.video}`;
  const modelKey = (m) => `${m.arch}:${m.seed}`;
  let state = null;

  function parse(hash) {
    const raw = {};
    for (const part of hash.replace(/^#/, "").split("&")) {
      const at = part.indexOf("=");
      if (at > 0) raw[part.slice(0, at)] = decodeURIComponent(part.slice(at + 1));
    }
    return raw;
  }

  function normalise(raw) {
    const video = M.videos.find((v) => videoKey(v) === raw.v) || M.videos[0];
    const model = video.models.find((m) => modelKey(m) === raw.m) || video.models[0];
    const frame = model.frames.includes(Number(raw.f)) ? Number(raw.f) : model.frames[0];
    const layer = model.layers.includes(raw.l) ? raw.l : model.layers[0];
    let pixel = null;
    const xy = (raw.p || "").split(",").map(Number);
    if (xy.length === 2 && xy.every(Number.isInteger) && xy[0] >= 0 && xy[0] < model.width
        && xy[1] >= 0 && xy[1] < model.height) pixel = xy;
    let neuron = null;
    const [nl, nid] = (raw.n || "").split(":");
    if (model.layers.includes(nl) && /^\d+$/.test(nid || "") && Number(nid) < model.neurons[nl]) {
      neuron = [nl, Number(nid)];
    }
    const names = OVERLAYS.map((o) => o[0]);
    const overlays = (raw.o || "").split(",").filter((o) => names.includes(o));
    const opacity = /^\d+$/.test(raw.op || "") ? Math.min(100, Number(raw.op)) : 55;
    return {video, model, frame, layer, pixel, neuron, overlays, opacity};
  }

  function serialise(s) {
    const parts = [["v", videoKey(s.video)], ["m", s.model ? modelKey(s.model) : ""],
      ["f", s.frame], ["l", s.layer]];
    if (s.pixel) parts.push(["p", s.pixel.join(",")]);
    if (s.neuron) parts.push(["n", s.neuron.join(":")]);
    if (s.overlays.length) parts.push(["o", s.overlays.join(",")]);
    parts.push(["op", s.opacity]);
    return parts.map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%2F/g, "/")
      .replace(/%2C/g, ",").replace(/%3A/g, ":")}`).join("&");
  }

  function update(patch) {
    const next = {...state, ...patch};
    state = normalise(parse(serialise(next)));
    history.replaceState(null, "", `#${serialise(state)}`);
    render();
  }

  // ------------------------------------------------------------------ rendering
  let generation = 0;
  const frameDir = () => `${state.model.path}/f${state.frame}`;
  const zoom = (m) => Math.max(1, Math.floor(768 / m.width));
  const layerData = (layer) => load(`${frameDir()}/${layer}.js`);
  const pct = (share) => `${(100 * share).toFixed(share < 0.1 ? 2 : 1)} %`;

  async function render() {
    const gen = ++generation;
    document.body.dataset.busy = "1";
    $("error").hidden = true;
    try {
      renderControls();
      await Promise.all([renderView(gen), renderPixel(gen), renderNeuron(gen), renderScatter(gen)]);
    } catch (err) {
      console.error(err);
      $("error").textContent = String(err.message || err);
      $("error").hidden = false;
    } finally {
      if (gen === generation) document.body.dataset.busy = "0";
    }
  }

  function options(select, items, value) {
    select.replaceChildren(...items.map(([v, label]) => el("option", {value: v, textContent: label})));
    select.value = value;
  }

  function renderControls() {
    const m = state.model;
    $("run").textContent = `run ${M.run}`;
    options($("video"), M.videos.map((v) => [videoKey(v), `${v.dataset} / ${v.video}`]), videoKey(state.video));
    options($("model"), state.video.models.map((x) => [modelKey(x), `${ARCH[x.arch]} seed ${x.seed}`]), modelKey(m));
    options($("frame"), m.frames.map((f) => [f, `frame ${f}`]), state.frame);
    options($("layer"), m.layers.map((l) => [l, `${l} (${m.neurons[l]} neurons)`]), state.layer);
    for (const box of $("overlays").querySelectorAll("input")) box.checked = state.overlays.includes(box.value);
    $("opacity").value = state.opacity;
  }

  async function renderView(gen) {
    const m = state.model, z = zoom(m), dir = frameDir();
    const img = $("frame-img");
    Object.assign(img, {width: m.width * z, height: m.height * z});
    img.src = `${dir}/frame.png`;
    const layers = [];
    for (const [name, , scope] of OVERLAYS) {
      if (!state.overlays.includes(name)) continue;
      const src = scope === "frame" ? `${dir}/${name}.png` : `${dir}/${state.layer}_${name}.png`;
      layers.push(el("img", {className: "overlay", src, width: m.width * z, height: m.height * z,
        alt: name}));
      layers.at(-1).dataset.overlay = name;
      layers.at(-1).style.opacity = name === "grid" ? 1 : state.opacity / 100;
    }
    $("view").querySelectorAll("img.overlay").forEach((node) => node.remove());
    $("marker").before(...layers);
    const marker = $("marker");
    marker.hidden = !state.pixel;
    if (state.pixel) {
      const size = Math.max(z, 6);
      Object.assign(marker.style, {width: `${size}px`, height: `${size}px`,
        left: `${state.pixel[0] * z + (z - size) / 2}px`, top: `${state.pixel[1] * z + (z - size) / 2}px`});
    }
    await Promise.all([img, ...layers].map((node) => node.decode()));
    const data = await layerData(state.layer);
    if (gen !== generation) return;
    const legend = state.overlays.filter((o) => data[o]).map((o) => `${o} max ${data[o].max.toPrecision(3)}`);
    $("legend").textContent = `${ARCH[m.arch]} seed ${m.seed}, frame ${state.frame}, ${m.width}×${m.height}` +
      (legend.length ? ` · ${state.layer}: ${legend.join(", ")}` : "");
  }

  async function topNeurons(layer, x, y) {
    const d = await layerData(layer);
    const [ids, shares] = await Promise.all([unpack(d.ids), unpack(d.shares)]);
    const plane = d.height * d.width, at = y * d.width + x, kept = new Set(d.maps.ids), rows = [];
    for (let rank = 0; rank < d.k; rank++) {
      const id = ids[rank * plane + at];
      if (id === NONE[d.ids.dtype]) break;
      rows.push({rank: rank + 1, id, share: shares[rank * plane + at] / d.share_max, kept: kept.has(id)});
    }
    return {d, rows};
  }

  async function renderPixel(gen) {
    if (!state.pixel) { $("pixel").textContent = "Click the frame."; return; }
    const m = state.model, [x, y] = state.pixel;
    const frame = await load(`${frameDir()}/frame.js`);
    const labels = await unpack(frame.instances);
    const segment = frame.segments[labels[y * frame.width + x]];
    const tables = await Promise.all(m.layers.map((layer) => topNeurons(layer, x, y)));
    if (gen !== generation) return;
    const parts = [el("p", {textContent: `(${x}, ${y}) · segment ${segment ? segment.name : "?"}`})];
    m.layers.forEach((layer, i) => {
      const {d, rows} = tables[i];
      const head = el("tr", {}, ["rank", "neuron", "share of Σ|C|"].map((t) => el("th", {textContent: t})));
      const body = rows.map((r) => {
        const tr = el("tr", {className: "neuron"}, [el("td", {textContent: r.rank}),
          el("td", {className: "id", textContent: r.id}), el("td", {textContent: pct(r.share)})]);
        Object.assign(tr.dataset, {layer, neuron: r.id, rank: r.rank, share: r.share, hasMap: r.kept ? 1 : 0});
        if (state.neuron && state.neuron[0] === layer && state.neuron[1] === r.id) tr.classList.add("selected");
        return tr;
      });
      const table = el("table", {}, [el("caption", {className: "caption",
        textContent: `${layer}: top ${rows.length} of ${d.neurons} (◆ = map kept)`}), head, ...body]);
      table.dataset.layer = layer;
      parts.push(table);
    });
    $("pixel").replaceChildren(...parts);
  }

  async function clusterOf(layer, id) {
    const info = state.model.scatter[layer];
    if (!info || (state.model.arch !== "nerv" && state.frame !== info.frame)) return null;
    const pts = await scatterPoints(info);
    const seed = pts.data.seeds.indexOf(state.model.seed);
    for (let i = 0; i < pts.neuron.length; i++) {
      if (pts.seed[i] === seed && pts.neuron[i] === id) return {label: pts.label[i], info};
    }
    return {label: null, info};
  }

  function mapTile(d, tile, dir) {
    const m = state.model, z = Math.max(1, Math.floor(512 / m.width));
    const col = tile % d.maps.cols, row = Math.floor(tile / d.maps.cols);
    const div = el("div", {id: "map"});
    Object.assign(div.dataset, {atlas: `${dir}/${d.maps.file}`, tile, col, row,
      scale: d.maps.scale[tile], width: m.width, height: m.height, zoom: z});
    Object.assign(div.style, {width: `${m.width * z}px`, height: `${m.height * z}px`,
      backgroundImage: `url("${dir}/${d.maps.file}")`,
      backgroundSize: `${d.maps.cols * m.width * z}px ${d.maps.rows * m.height * z}px`,
      backgroundPosition: `${-col * m.width * z}px ${-row * m.height * z}px`});
    return div;
  }

  async function segmentTable(layer, id) {
    const m = state.model;
    const seg = await load(`${m.path}/${layer}_segments.js`);
    const frames = seg.frames.filter((f) => m.arch === "nerv" || f.frame === state.frame);
    const names = new Map(), cells = new Map();
    for (const f of frames) {
      const shares = await unpack(f.shares), count = f.segments.length;
      f.segments.forEach((s, j) => {
        names.set(s.pan_id, s.name);
        cells.set(`${s.pan_id}@${f.frame}`, shares[id * count + j] / seg.share_max);
      });
    }
    const head = el("tr", {}, [el("th", {textContent: "segment"}),
      ...frames.map((f) => el("th", {textContent: `f${f.frame}`}))]);
    const rows = [...names].map(([pan, name]) => el("tr", {}, [el("td", {textContent: name}),
      ...frames.map((f) => el("td", {textContent: cells.has(`${pan}@${f.frame}`) ? pct(cells.get(`${pan}@${f.frame}`)) : "–"}))]));
    const table = el("table", {id: "segments"}, [el("caption", {className: "caption",
      textContent: "share of the neuron's Σ|C| per segment"}), head, ...rows]);
    return table;
  }

  async function renderNeuron(gen) {
    if (!state.neuron) { $("neuron").textContent = "Click a neuron."; return; }
    const m = state.model, [layer, id] = state.neuron, dir = frameDir();
    const [d, cluster, table] = await Promise.all([layerData(layer), clusterOf(layer, id), segmentTable(layer, id)]);
    if (gen !== generation) return;
    const tile = d.maps.ids.indexOf(id);
    const about = [`${ARCH[m.arch]} ${layer}, neuron ${id}, seed ${m.seed}, frame ${state.frame}`];
    if (cluster) about.push(cluster.label === null ? `not clustered (dead at frame ${cluster.info.frame})`
      : `cluster ${cluster.label} (UMAP at frame ${cluster.info.frame}, seeds ${cluster.info.seeds.join(", ")})`);
    const parts = [el("p", {id: "neuron-about", textContent: about.join(" · ")})];
    if (tile >= 0) {
      parts.push(mapTile(d, tile, dir), el("p", {className: "caption",
        textContent: `C from −${d.maps.scale[tile].toPrecision(3)} (blue) to +${d.maps.scale[tile].toPrecision(3)} (red); kept as ${d.maps.sources[tile]}`}));
    } else {
      parts.push(el("p", {id: "no-map", textContent: `map not kept: a layer keeps ${d.maps.ids.length} maps per frame (◆ in the lists)`}));
    }
    parts.push(table);
    $("neuron").replaceChildren(...parts);
  }

  const scatterCache = new Map();
  function scatterPoints(info) {
    if (!scatterCache.has(info.file)) {
      scatterCache.set(info.file, (async () => {
        const data = await load(info.file);
        const [x, y, label, seed, neuron] = await Promise.all(
          ["x", "y", "label", "seed", "neuron"].map((key) => unpack(data[key])));
        return {data, x, y, label, seed, neuron};
      })());
    }
    return scatterCache.get(info.file);
  }

  let hits = null;  // canvas positions of the drawn points
  async function renderScatter(gen) {
    const m = state.model, info = m.scatter[state.layer], canvas = $("scatter");
    const shown = info && (m.arch === "nerv" || state.frame === info.frame);
    $("scatter-panel").hidden = !shown;
    if (!shown) { hits = null; return; }
    const pts = await scatterPoints(info);
    if (gen !== generation) return;
    const ctx = canvas.getContext("2d"), size = canvas.width, pad = 8, span = size - 2 * pad;
    const own = pts.data.seeds.indexOf(m.seed);
    ctx.clearRect(0, 0, size, size);
    hits = {info, px: new Float32Array(pts.x.length), py: new Float32Array(pts.x.length), pts};
    for (const mine of [false, true]) {
      for (let i = 0; i < pts.x.length; i++) {
        if ((pts.seed[i] === own) !== mine) continue;
        const px = pad + span * pts.x[i] / 65535, py = pad + span * (1 - pts.y[i] / 65535);
        hits.px[i] = px; hits.py[i] = py;
        const [r, g, b] = M.label_colours[pts.label[i] % M.label_colours.length];
        ctx.fillStyle = `rgba(${r},${g},${b},${mine ? 0.9 : 0.25})`;
        ctx.beginPath(); ctx.arc(px, py, mine ? 2.5 : 2, 0, 2 * Math.PI); ctx.fill();
        if (mine && state.neuron && state.neuron[0] === state.layer && state.neuron[1] === pts.neuron[i]) {
          ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
          ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
        }
      }
    }
    canvas.dataset.points = pts.x.length;
    $("scatter-note").textContent = `${ARCH[m.arch]} ${state.layer} at frame ${info.frame}, seeds ` +
      `${pts.data.seeds.join(", ")}: ${pts.x.length} neurons in ${pts.data.clusters} clusters; bright = seed ${m.seed}. Click a point.`;
  }

  function pickPoint(event) {
    if (!hits) return;
    const rect = $("scatter").getBoundingClientRect();
    const x = (event.clientX - rect.left) * $("scatter").width / rect.width;
    const y = (event.clientY - rect.top) * $("scatter").height / rect.height;
    let best = -1, dist = 64;
    for (let i = 0; i < hits.px.length; i++) {
      const d2 = (hits.px[i] - x) ** 2 + (hits.py[i] - y) ** 2;
      if (d2 < dist) { dist = d2; best = i; }
    }
    if (best < 0) return;
    const seed = hits.pts.data.seeds[hits.pts.seed[best]];
    const model = state.video.models.find((x2) => x2.arch === state.model.arch && x2.seed === seed);
    if (!model) return;
    update({model, neuron: [state.layer, hits.pts.neuron[best]],
      frame: model.arch === "ffn" ? hits.info.frame : state.frame});
  }

  // ------------------------------------------------------------------ events
  function start() {
    for (const [name, label] of OVERLAYS) {
      const box = el("input", {type: "checkbox", value: name, id: `overlay-${name}`});
      box.addEventListener("change", () => update({overlays: OVERLAYS.map((o) => o[0])
        .filter((o) => $(`overlay-${o}`).checked)}));
      $("overlays").append(el("label", {}, [box, ` ${label}`]));
    }
    $("video").addEventListener("change", (e) => update({video: M.videos.find((v) => videoKey(v) === e.target.value)}));
    $("model").addEventListener("change", (e) => update({model: state.video.models.find((x) => modelKey(x) === e.target.value)}));
    $("frame").addEventListener("change", (e) => update({frame: Number(e.target.value)}));
    $("layer").addEventListener("change", (e) => update({layer: e.target.value}));
    $("opacity").addEventListener("input", (e) => update({opacity: Number(e.target.value)}));
    $("view").addEventListener("click", (e) => {
      const rect = $("frame-img").getBoundingClientRect(), z = rect.width / state.model.width;
      const x = Math.floor((e.clientX - rect.left) / z), y = Math.floor((e.clientY - rect.top) / z);
      update({pixel: [Math.min(x, state.model.width - 1), Math.min(y, state.model.height - 1)]});
    });
    $("pixel").addEventListener("click", (e) => {
      const row = e.target.closest("tr.neuron");
      if (row) update({neuron: [row.dataset.layer, Number(row.dataset.neuron)]});
    });
    $("scatter").addEventListener("click", pickPoint);
    const fromHash = () => {
      state = normalise(parse(location.hash));
      history.replaceState(null, "", `#${serialise(state)}`);
      render();
    };
    window.addEventListener("hashchange", fromHash);
    fromHash();
  }

  if (!M || !M.videos || !M.videos.length) {
    document.body.dataset.busy = "0";
    $("error").textContent = "manifest.js lists no model: run `snakemake explorer` first";
    $("error").hidden = false;
  } else {
    start();
  }
})();

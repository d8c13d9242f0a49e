// CGN playground. It talks to the service only through the public HTTP API, with the endpoints and JSON the
// SDK uses (GET /models, /models/{name}/classes, /assets; POST /counterfactual, /interpolate, /assets,
// /batches), and sends an API key as the SDK does: Authorization: Bearer <key>.
"use strict";

(() => {
  const MECHANISMS = ["shape", "texture", "background"];
  const FIELD = { shape: "shape", texture: "texture", background: "bg" };
  const OUTPUT_OF = { shape: "mask", texture: "foreground", background: "background" };
  const OUTPUTS = ["composite", "mask", "foreground", "background"];
  const TITLE = { composite: "composite", mask: "mask", foreground: "texture", background: "background" };
  const MECH_OF = { mask: "shape", foreground: "texture", background: "background" };
  const TERMINAL = ["completed", "failed", "cancelled"];
  const KEY_STORAGE = "cgn-api-key";
  const MAX_SEED = Number.MAX_SAFE_INTEGER; // the API takes up to 2**63-1; a page number is exact up to 2**53-1

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "scope") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const randomInt = (limit) => {
    const words = new Uint32Array(1);
    crypto.getRandomValues(words);
    return words[0] % limit;
  };
  const hex = (bytes) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");

  const state = {
    key: sessionStorage.getItem(KEY_STORAGE) || "",
    models: [],
    assets: [],
    model: null,
    generation: 0,
    lastRequest: null,
    job: null,
  };

  // ---- HTTP ------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  const base = () => new URL(".", location.href).href.replace(/\/$/, "");

  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    const err = body && body.error;
    let message = err && err.message ? err.message : `${response.status} ${response.statusText}`;
    if (response.status === 503 && response.headers.get("Retry-After")) {
      message += ` (retry after ${response.headers.get("Retry-After")} s)`;
    }
    return { message, body };
  }

  let keyPrompt = null;
  function askKey(message) {
    if (!keyPrompt) {
      keyPrompt = new Promise((resolve) => {
        const dialog = $("key-dialog");
        $("key-message").textContent = message;
        $("key-input").value = "";
        dialog.returnValue = "";
        dialog.addEventListener(
          "close",
          () => {
            keyPrompt = null;
            const key = $("key-input").value.trim();
            resolve(dialog.returnValue === "ok" && key ? key : null);
          },
          { once: true },
        );
        dialog.showModal();
        $("key-input").focus();
      });
    }
    return keyPrompt;
  }

  function setKey(key) {
    state.key = key || "";
    if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
    else sessionStorage.removeItem(KEY_STORAGE);
    if (state.key) $("key-button").hidden = false;
  }

  async function api(path, { method = "GET", json, form, accept, headers = {} } = {}) {
    for (;;) {
      const h = { ...headers };
      if (state.key) h.Authorization = `Bearer ${state.key}`;
      if (accept) h.Accept = accept;
      let body;
      if (json !== undefined) {
        h["Content-Type"] = "application/json";
        body = typeof json === "string" ? json : toJSON(json);
      } else if (form) {
        body = form;
      }
      let response;
      try {
        response = await fetch(path, { method, headers: h, body });
      } catch (err) {
        throw new ApiError(`${method} /${path}: no answer from the service (${err.message})`, 0, null);
      }
      if (response.status === 401) {
        const { message, body: errBody } = await errorOf(response);
        $("key-button").hidden = false;
        const key = await askKey(message);
        if (key === null) throw new ApiError(message, 401, errBody);
        setKey(key);
        continue;
      }
      if (!response.ok) {
        const { message, body: errBody } = await errorOf(response);
        throw new ApiError(message, response.status, errBody);
      }
      return response;
    }
  }

  const getJSON = async (path) => (await api(path)).json();

  function showError(id, err) {
    const node = $(id);
    if (!err) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.textContent = err.message || String(err);
    node.hidden = false;
  }

  async function download(path, filename) {
    const blob = await (await api(path)).blob();
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---- class pickers: search the model's vocabulary as you type -----------------------------------------
  class ClassPicker {
    constructor(input, mechanism, onCommit) {
      this.input = input;
      this.list = $(input.getAttribute("aria-controls"));
      this.mechanism = mechanism; // a function: which vocabulary to search
      this.onCommit = onCommit;
      this.options = [];
      this.active = -1;
      this.query = 0;
      this.timer = null;
      input.addEventListener("input", () => {
        delete input.dataset.id;
        this.query++; // answers for older text are dropped, and Enter no longer picks their options
        this.highlight(-1);
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.search(), 150);
      });
      input.addEventListener("focus", () => this.search());
      input.addEventListener("blur", () => setTimeout(() => this.close(), 120));
      input.addEventListener("change", () => this.onCommit && this.onCommit());
      input.addEventListener("keydown", (e) => this.key(e));
    }

    value() {
      if (this.input.dataset.id !== undefined && this.input.dataset.id !== "") return Number(this.input.dataset.id);
      const text = this.input.value.trim();
      if (!text) return null;
      return /^\d+$/.test(text) && Number(text) <= MAX_SEED ? Number(text) : text;
    }

    set(id, name) {
      this.input.value = name;
      if (id === null || id === undefined) delete this.input.dataset.id;
      else this.input.dataset.id = String(id);
    }

    clear() {
      this.set(null, "");
      this.close();
    }

    key(e) {
      const open = !this.list.hidden;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (!open) {
          this.search();
          return;
        }
        const picks = this.options.length;
        if (!picks) return;
        const step = e.key === "ArrowDown" ? 1 : -1;
        this.highlight((this.active + step + picks) % picks);
      } else if (e.key === "Enter") {
        if (open && this.active >= 0) {
          e.preventDefault();
          this.pick(this.options[this.active]);
        } else if (this.onCommit) {
          // Enter commits what was typed (the change event), no form submit on top of it
          e.preventDefault();
          this.close();
          this.input.dispatchEvent(new Event("change"));
        }
      } else if (e.key === "Escape") {
        if (open) {
          e.preventDefault();
          this.close();
        }
      } else if (e.key === "Tab") {
        this.close();
      }
    }

    highlight(i) {
      const items = this.list.querySelectorAll("li[role=option]");
      items.forEach((li, k) => li.setAttribute("aria-selected", k === i ? "true" : "false"));
      this.active = i;
      if (i >= 0 && items[i]) {
        this.input.setAttribute("aria-activedescendant", items[i].id);
        items[i].scrollIntoView({ block: "nearest" });
      } else {
        this.input.removeAttribute("aria-activedescendant");
      }
    }

    pick(option) {
      this.set(option.id, option.name);
      this.close();
      if (this.onCommit) this.onCommit();
    }

    close() {
      this.list.hidden = true;
      this.input.setAttribute("aria-expanded", "false");
      this.input.removeAttribute("aria-activedescendant");
      this.active = -1;
    }

    async search() {
      if (!state.model || !state.model.installed || this.input.disabled) return;
      const q = this.input.value.trim();
      const mech = this.mechanism();
      const params = new URLSearchParams({ mechanism: mech, limit: q ? "20" : "60" });
      if (q) params.set("q", q);
      const ticket = ++this.query;
      let data;
      try {
        data = await getJSON(`models/${encodeURIComponent(state.model.name)}/classes?${params}`);
      } catch (err) {
        if (ticket === this.query) this.render([], err.message);
        return;
      }
      if (ticket !== this.query || document.activeElement !== this.input) return;
      const entry = data.mechanisms[mech];
      let options = [];
      let note = "";
      if (!q) {
        options = entry.classes.map((c) => ({ id: c.id, name: c.name }));
        const total = state.model.mechanisms[mech].classes;
        if (total > options.length) note = `${total} classes: type to search names and synonyms`;
      } else {
        if (entry.resolved) {
          const r = entry.resolved;
          options.push({ id: r.id, name: r.name, via: r.via === "name" || r.via === "id" ? "" : `"${q}" via ${r.via}` });
        }
        for (const m of entry.matches) if (!options.some((o) => o.id === m.id)) options.push({ id: m.id, name: m.name });
        if (!options.length) {
          note = `No ${mech} class of ${state.model.name} matches "${q}"`;
          if (entry.suggestions && entry.suggestions.length) note += `; closest: ${entry.suggestions.join(", ")}`;
          if (data.asset) note += `; "${data.asset.name}" is an image asset`;
        }
      }
      this.render(options, note);
    }

    render(options, note) {
      this.options = options;
      this.list.replaceChildren();
      options.forEach((o, k) => {
        const li = el(
          "li",
          { role: "option", id: `${this.list.id}-${k}`, "aria-selected": "false" },
          el("span", { class: "id", text: String(o.id) }),
          o.name,
          o.via ? el("span", { class: "via", text: o.via }) : null,
        );
        li.addEventListener("mousedown", (e) => {
          e.preventDefault();
          this.pick(o);
        });
        this.list.append(li);
      });
      if (note) this.list.append(el("li", { class: "note", role: "presentation", text: note }));
      const show = options.length > 0 || !!note;
      this.list.hidden = !show;
      this.input.setAttribute("aria-expanded", show ? "true" : "false");
      this.highlight(options.length && this.input.value.trim() ? 0 : -1);
    }
  }

  // ---- the page's repeated pieces: stamped out of the <template>s of index.html ------------------------------
  const PANEL = {
    shape: { title: "Shape", note: "mask m" },
    texture: { title: "Texture", note: "foreground f" },
    background: { title: "Background", note: "b" },
  };

  const stamp = (id) => $(id).content.cloneNode(true);

  // The combobox and its listbox, into an empty .picker box that follows the label naming the input.
  function fillPicker(box, listLabel, data) {
    const id = box.previousElementSibling.htmlFor;
    const part = stamp("class-picker");
    const [input, list] = part.children;
    input.id = id;
    input.setAttribute("aria-controls", `${id}-list`);
    Object.assign(input.dataset, data);
    list.id = `${id}-list`;
    list.setAttribute("aria-label", listLabel);
    box.append(part);
    return input;
  }

  function mechanismPanel(mech) {
    const part = stamp("mechanism-panel");
    const panel = part.firstElementChild;
    const { title, note } = PANEL[mech];
    panel.dataset.mechanism = mech;
    panel.setAttribute("aria-labelledby", `${mech}-title`);
    const heading = panel.querySelector("h3");
    heading.id = `${mech}-title`;
    heading.prepend(`${title} `);
    heading.querySelector(".muted").textContent = note;
    const [classLabel, seedLabel] = panel.querySelectorAll("label");
    classLabel.htmlFor = `${mech}-class`;
    seedLabel.htmlFor = `${mech}-seed`;
    fillPicker(panel.querySelector(".picker"), `${title} classes`, { mechanism: mech }).placeholder = "type a class name";
    const seed = panel.querySelector(".mech-seed");
    seed.id = `${mech}-seed`;
    seed.dataset.mechanism = mech;
    const dice = panel.querySelector(".dice");
    dice.dataset.dice = seed.id;
    dice.setAttribute("aria-label", `Random ${mech} seed`);
    if (mech === "background") panel.append(stamp("background-extras"));
    return part;
  }

  // A code tabpanel for each tab of the request formats: tab-F controls code-F, which shows request-F.
  function codePanel(tab) {
    const format = tab.id.replace(/^tab-/, "");
    const part = stamp("code-panel");
    const panel = part.firstElementChild;
    panel.id = tab.getAttribute("aria-controls");
    panel.setAttribute("aria-labelledby", tab.id);
    panel.hidden = tab.getAttribute("aria-selected") !== "true";
    panel.querySelector("code").id = `request-${format}`;
    panel.querySelector(".copy").dataset.copy = `request-${format}`;
    return part;
  }

  function buildPage() {
    document.querySelector("#mechanisms .panels").append(...MECHANISMS.map(mechanismPanel));
    const details = $("request-details");
    details.append(...[...details.querySelectorAll("[role=tab]")].map(codePanel));
    for (const id of ["grid-mechanism", "interp-mechanism"]) $(id).append(stamp("mechanism-options"));
    for (const box of $("interp-form").querySelectorAll(".picker")) {
      const label = box.previousElementSibling.textContent;
      fillPicker(box, `${label[0].toUpperCase()}${label.slice(1)} class`, { role: label });
    }
  }

  // ---- the request of the mechanism panels -------------------------------------------------------------
  const pickers = {};

  // A whole number past 2^53 that a JS number would round (seeds go up to 2^63 - 1): kept as its digits,
  // and written as a JSON number by toJSON below.
  class ExactInt {
    constructor(digits) {
      this.digits = digits;
    }
  }
  const EXACT = /"@exact-int:(-?\d+)@"/g;

  function toJSON(value, indent) {
    const text = JSON.stringify(value, (_, v) => (v instanceof ExactInt ? `@exact-int:${v.digits}@` : v), indent);
    return text.replace(EXACT, "$1");
  }

  function seedOf(input, fallback) {
    const text = input.value.trim();
    if (text === "") return fallback;
    const n = Number(text);
    if (/^-?\d+$/.test(text) && !Number.isSafeInteger(n)) return new ExactInt(text.replace(/^(-?)0+(?=\d)/, "$1"));
    return Number.isFinite(n) ? n : text; // a wrong seed goes to the service, which says what is wrong
  }

  function choice(mech) {
    if (mech === "background" && $("bg-asset").value) return { asset: $("bg-asset").value };
    return pickers[mech].value();
  }

  function sharedParts(skip) {
    const body = {};
    for (const m of MECHANISMS) {
      if (m === skip) continue;
      const v = choice(m);
      if (v !== null) body[FIELD[m]] = v;
    }
    body.seed = seedOf($("seed"), 0);
    const seeds = {};
    for (const m of MECHANISMS) {
      const s = seedOf($(`${m}-seed`), null);
      if (s !== null) seeds[m] = s;
    }
    if (Object.keys(seeds).length) body.seeds = seeds;
    if (state.model.truncation) body.truncation = Number($("truncation").value);
    return body;
  }

  function counterfactualBody() {
    return { model: state.model.name, ...sharedParts(null), outputs: [...OUTPUTS] };
  }

  // ---- snippets: the exact JSON, curl and the SDK ---------------------------------------------------------
  const shellQuote = (s) => `'${s.replace(/'/g, "'\\''")}'`;

  function pyValue(v) {
    if (v === null) return "None";
    if (typeof v === "number") return String(v);
    if (v instanceof ExactInt) return v.digits;
    if (typeof v === "string") return JSON.stringify(v);
    if (Array.isArray(v)) return `[${v.map(pyValue).join(", ")}]`;
    if ("asset" in v && Object.keys(v).length === 1) return `asset(${JSON.stringify(v.asset)})`;
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyValue(x)}`).join(", ")}}`;
  }

  function snippets(text, body) {
    $("request-json").textContent = text;
    const auth = state.key ? ` \\\n  -H "Authorization: Bearer $CGN_API_KEY"` : "";
    $("request-curl").textContent =
      `# the composite as PNG (the first of "outputs"); add -H 'Accept: application/json' for all of them as base64\n` +
      `curl -s${auth} \\\n  -d ${shellQuote(toJSON(body))} \\\n  ${base()}/counterfactual > composite.png`;
    const args = [];
    for (const m of MECHANISMS) if (FIELD[m] in body) args.push(`${FIELD[m]}=${pyValue(body[FIELD[m]])}`);
    for (const k of ["seed", "seeds", "outputs", "model", "truncation"]) if (k in body) args.push(`${k}=${pyValue(body[k])}`);
    const usesAsset = /asset\(/.test(args.join(""));
    $("request-sdk").textContent =
      (state.key ? "import os\n\n" : "") +
      `from cgn_client import CGNClient${usesAsset ? ", asset" : ""}\n\n` +
      `client = CGNClient(${JSON.stringify(base())}${state.key ? ', api_key=os.environ["CGN_API_KEY"]' : ""})\n` +
      `cf = client.counterfactual(\n    ${args.join(",\n    ")},\n)\n` +
      `cf.image.save("composite.png")  # cf.images["mask"], ["foreground"], ["background"]; cf.labels says how names resolved\n`;
  }

  // ---- generate: POST /counterfactual with every output ---------------------------------------------------
  let regenerateTimer = null;
  function scheduleGenerate() {
    clearTimeout(regenerateTimer);
    regenerateTimer = setTimeout(generate, 120);
  }

  function caption(output, data) {
    if (output === "composite") return "x = m·f + (1 − m)·b";
    const label = data.labels[MECH_OF[output]];
    if (!label) return "";
    if (label.via === "asset") return `image "${label.name}"`;
    const via = label.via === "id" || label.via === "name" ? "" : ` (${label.via})`;
    return `${String(label.id) === label.name ? "class" : `${label.id}:`} ${label.name}${via}`;
  }

  function dataUrl(media, b64) {
    return `data:${media};base64,${b64}`;
  }

  async function generate() {
    if (!state.model || !state.model.installed) return;
    const result = $("result");
    const body = counterfactualBody();
    const text = toJSON(body, 2);
    if (text === state.lastRequest && result.dataset.state !== "error") return;
    state.lastRequest = text;
    const ticket = ++state.generation;
    result.dataset.state = "loading";
    result.setAttribute("aria-busy", "true");
    snippets(text, body);
    try {
      const data = await (await api("counterfactual", { method: "POST", json: text, accept: "application/json" })).json();
      if (ticket !== state.generation) return;
      const outputs = $("outputs");
      outputs.replaceChildren();
      outputs.classList.toggle("pixelated", data.image_size <= 64);
      const model = data.model;
      for (const output of ["mask", "foreground", "background", "composite"]) {
        if (!(output in data.outputs)) continue;
        const src = dataUrl(data.media_type, data.outputs[output]);
        const img = el("img", { src, alt: `${TITLE[output]}: ${caption(output, data)}`, "data-output": output });
        img.width = 256;
        img.height = 256;
        const link = el("a", { href: src, download: `cgn-${model}-${output}.${data.format}`, text: "Download PNG" });
        if (data.format !== "png") link.textContent = `Download ${data.format.toUpperCase()}`;
        outputs.append(
          el(
            "figure",
            { class: output },
            img,
            el("figcaption", {}, el("strong", { text: TITLE[output] }), caption(output, data), " ", link),
          ),
        );
      }
      const note = $("result-note");
      note.hidden = !data.note;
      note.textContent = data.note || "";
      showError("result-error", null);
      result.dataset.request = text;
      result.dataset.state = "ready";
    } catch (err) {
      if (ticket !== state.generation) return;
      showError("result-error", err);
      result.dataset.request = text;
      result.dataset.state = "error";
    } finally {
      if (ticket === state.generation) result.setAttribute("aria-busy", "false");
    }
  }

  // ---- models ---------------------------------------------------------------------------------------------
  async function loadModels() {
    const select = $("model-select");
    let data;
    try {
      data = await getJSON("models");
      showError("model-error", null);
    } catch (err) {
      showError("model-error", err);
      select.replaceChildren(el("option", { text: "no models" }));
      $("mechanisms-fields").disabled = true;
      return;
    }
    state.models = data.models;
    state.assets = data.assets || [];
    renderAssets();
    select.replaceChildren(
      ...data.models.map((m) =>
        el("option", { value: m.name, text: m.installed ? m.name : `${m.name} (not installed)`, selected: m.default }),
      ),
    );
    select.disabled = false;
    const wanted = new URLSearchParams(location.search).get("model");
    if (wanted && data.models.some((m) => m.name === wanted)) select.value = wanted;
    await selectModel(select.value);
  }

  function renderAssets(selected) {
    const sel = $("bg-asset");
    const current = selected !== undefined ? selected : sel.value;
    sel.replaceChildren(
      el("option", { value: "", text: "none: use the class" }),
      ...state.assets.map((a) =>
        el("option", { value: a.name, text: `${a.name}${a.builtin ? " (built in)" : ""} ${a.width}×${a.height}` }),
      ),
    );
    sel.value = state.assets.some((a) => a.name === current) ? current : "";
    $("background-class").disabled = !!sel.value;
  }

  async function selectModel(name) {
    const model = state.models.find((m) => m.name === name);
    state.model = model;
    state.lastRequest = null;
    const badges = $("model-badges");
    badges.replaceChildren();
    const fields = $("mechanisms-fields");
    $("model-install").hidden = model.installed;
    for (const id of ["grid-build", "interp-run", "batch-submit"]) $(id).disabled = !model.installed;
    if (!model.installed) {
      $("outputs").replaceChildren();
      $("result").dataset.state = "idle";
      badges.append(el("span", { class: "badge warn", text: "not installed" }));
      $("model-install-command").textContent = model.install;
      $("model-info").textContent = "";
      fields.disabled = true;
      return;
    }
    fields.disabled = false;
    badges.append(el("span", { class: "badge ok", text: "installed" }));
    if (model.default) badges.append(el("span", { class: "badge", text: "default" }));
    if (model.loaded) badges.append(el("span", { class: "badge", text: "loaded" }));
    const counts = MECHANISMS.map((m) => `${model.mechanisms[m].classes} ${m}`).join(" / ");
    $("model-info").textContent = `${model.description || model.architecture} · ${model.image_size}×${model.image_size} px · classes: ${counts}`;
    $("truncation-box").hidden = !model.truncation;
    for (const m of MECHANISMS) pickers[m].clear();
    const many = MECHANISMS.some((m) => model.mechanisms[m].classes > 16);
    $("grid-count-box").hidden = !many;
    $("grid-table").replaceChildren();
    $("interp-table").replaceChildren();
    $("grid").dataset.state = "idle";
    $("interpolation").dataset.state = "idle";
    await interpolationDefaults();
    await generate();
  }

  // ---- counterfactual grid: vary one mechanism, keep the noise --------------------------------------------
  function classesToVary(mech) {
    const total = state.model.mechanisms[mech].classes;
    if (total <= 16) return [...Array(total).keys()];
    const n = Math.max(2, Math.min(16, Number($("grid-count").value) || 8));
    const ids = new Set();
    while (ids.size < Math.min(n, total)) ids.add(randomInt(total));
    return [...ids];
  }

  async function pool(items, limit, fn) {
    let next = 0;
    const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    });
    await Promise.all(workers);
  }

  function imageCell(src, alt, output) {
    return el("td", {}, el("img", { src, alt, "data-output": output, width: 96, height: 96 }));
  }

  async function buildGrid() {
    const section = $("grid");
    const table = $("grid-table");
    const mech = $("grid-mechanism").value;
    const ids = classesToVary(mech);
    const baseBody = counterfactualBody();
    section.dataset.state = "loading";
    showError("grid-error", null);
    table.classList.toggle("pixelated", state.model.image_size <= 64);
    const head = el("tr", {}, el("th", { scope: "col", text: `${mech} class →` }));
    const rows = {};
    const order = [OUTPUT_OF[mech], "composite", ...OUTPUTS.filter((o) => o !== "composite" && o !== OUTPUT_OF[mech])];
    for (const output of order) {
      rows[output] = el(
        "tr",
        { class: output === OUTPUT_OF[mech] ? "moving" : "", "data-output": output },
        el("th", { scope: "row", text: TITLE[output] }),
      );
    }
    const cells = ids.map(() => ({}));
    ids.forEach((id, k) => {
      head.append(el("th", { scope: "col", id: `grid-col-${k}`, text: String(id) }));
      for (const output of order) {
        const td = el("td", {}, el("span", { class: "muted small", text: "…" }));
        rows[output].append(td);
        cells[k][output] = td;
      }
    });
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...order.map((o) => rows[o])));
    let failed = null;
    await pool(ids, 4, async (id, k) => {
      const body = { ...baseBody, [FIELD[mech]]: id };
      try {
        const data = await (await api("counterfactual", { method: "POST", json: body, accept: "application/json" })).json();
        const label = data.labels[mech];
        $(`grid-col-${k}`).textContent = `${label.id}: ${label.name}`;
        for (const output of order) {
          const src = dataUrl(data.media_type, data.outputs[output]);
          cells[k][output].replaceWith(imageCell(src, `${TITLE[output]}, ${mech} class ${label.name}`, output));
        }
      } catch (err) {
        failed = failed || err;
      }
    });
    if (failed) {
      showError("grid-error", failed);
      section.dataset.state = "error";
    } else {
      section.dataset.state = "ready";
    }
  }

  // ---- interpolation: POST /interpolate -------------------------------------------------------------------
  const interp = {};

  async function interpolationDefaults() {
    const mech = $("interp-mechanism").value;
    const typed = [interp.from.input.value, interp.to.input.value];
    try {
      const data = await getJSON(`models/${encodeURIComponent(state.model.name)}/classes?mechanism=${mech}&limit=8`);
      if (typed[0] !== interp.from.input.value || typed[1] !== interp.to.input.value) return; // typed meanwhile
      const classes = data.mechanisms[mech].classes;
      const last = Math.min(classes.length - 1, mech === "shape" ? 7 : 5);
      interp.from.set(classes[0].id, classes[0].name);
      interp.to.set(classes[last].id, classes[last].name);
    } catch (err) {
      showError("interp-error", err);
    }
  }

  async function runInterpolation() {
    const section = $("interpolation");
    const table = $("interp-table");
    const mech = $("interp-mechanism").value;
    const body = { model: state.model.name, mechanism: mech };
    body.from = interp.from.value();
    body.to = interp.to.value();
    body.steps = seedOf($("interp-steps"), 8);
    Object.assign(body, sharedParts(mech));
    section.dataset.state = "loading";
    showError("interp-error", null);
    try {
      const data = await (await api("interpolate", { method: "POST", json: body, accept: "application/json" })).json();
      table.classList.toggle("pixelated", data.image_size <= 64);
      const head = el("tr", {}, el("th", { scope: "col", text: "t →" }));
      data.t.forEach((t, i) => {
        const label = i === 0 ? `${data.from.name}` : i === data.t.length - 1 ? `${data.to.name}` : t.toFixed(2);
        head.append(el("th", { scope: "col", text: label }));
      });
      const rows = Object.entries(data.outputs).map(([output, images]) =>
        el(
          "tr",
          { class: output === OUTPUT_OF[mech] ? "moving" : "", "data-output": output },
          el("th", { scope: "row", text: TITLE[output] }),
          ...images.map((b64, i) => imageCell(dataUrl(data.media_type, b64), `${TITLE[output]} at t=${data.t[i].toFixed(2)}`, output)),
        ),
      );
      table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
      section.dataset.request = toJSON(body);
      section.dataset.state = "ready";
    } catch (err) {
      showError("interp-error", err);
      section.dataset.state = "error";
    }
  }

  // ---- batch jobs: POST /batches, poll GET /batches/{id} --------------------------------------------------
  function showJob(job) {
    $("job").hidden = false;
    $("batch").dataset.state = job.state;
    const badge = $("job-state");
    badge.textContent = job.state;
    badge.className = `state ${job.state}`;
    $("job-id").textContent = job.id;
    $("job-model").textContent = `${job.model} · ${job.format} · ${job.num_shards} shard${job.num_shards === 1 ? "" : "s"} of ${job.shard_size}`;
    const percent = Math.floor(job.progress * 100);
    const bar = $("job-progress");
    bar.setAttribute("aria-valuenow", String(percent));
    bar.querySelector(".bar").style.width = `${percent}%`;
    let text = `${job.done} / ${job.n} samples (${percent} %)`;
    if (job.failed) text += ` · ${job.failed} failed`;
    $("job-progress-text").textContent = text;
    $("job-cancel").hidden = TERMINAL.includes(job.state);
    const shards = $("job-shards");
    const have = new Set([...shards.querySelectorAll("button")].map((b) => b.dataset.index));
    for (const s of job.shards || []) {
      if (have.has(String(s.index))) continue;
      const button = el("button", {
        type: "button",
        class: "secondary",
        text: `${s.name} (${s.samples})`,
        "data-index": String(s.index),
      });
      button.addEventListener("click", () =>
        download(`batches/${job.id}/shards/${s.index}`, s.name).catch((err) => showError("batch-error", err)),
      );
      shards.append(el("li", {}, button));
    }
    const errors = job.errors || [];
    $("job-errors-box").hidden = errors.length === 0 && !(job.failed_shards || []).length;
    $("job-errors").replaceChildren(
      ...errors.map((e) => el("li", { text: `shard ${e.shard}${e.worker ? ` (${e.worker})` : ""}: ${e.message}` })),
    );
  }

  async function pollJob(id) {
    while (state.job === id) {
      let job;
      try {
        job = await getJSON(`batches/${id}`);
        showError("batch-error", null);
      } catch (err) {
        showError("batch-error", err);
        if (err.status === 404 || err.status === 401) return;
        await sleep(2000);
        continue;
      }
      if (state.job !== id) return;
      showJob(job);
      if (TERMINAL.includes(job.state)) return;
      await sleep(400);
    }
  }

  async function submitBatch() {
    const body = { model: state.model.name, n: seedOf($("batch-n"), 200), seed: seedOf($("batch-seed"), 0) };
    body.format = $("batch-format").value;
    const shard = seedOf($("batch-shard"), null);
    if (shard !== null) body.shard_size = shard;
    if (state.model.truncation) body.truncation = Number($("truncation").value);
    showError("batch-error", null);
    $("batch-submit").disabled = true;
    try {
      const job = await (await api("batches", { method: "POST", json: body, headers: { "Idempotency-Key": hex(16) } })).json();
      state.job = job.id;
      $("job-shards").replaceChildren();
      showJob(job);
      pollJob(job.id);
    } catch (err) {
      showError("batch-error", err);
    } finally {
      $("batch-submit").disabled = !state.model.installed;
    }
  }

  // ---- uploads: POST /assets ------------------------------------------------------------------------------
  function assetName(filename) {
    let name = filename.toLowerCase().replace(/\.[a-z0-9]+$/, "").replace(/[^a-z0-9_-]+/g, "-").replace(/^[^a-z]+/, "");
    name = name.slice(0, 48) || "image";
    return name;
  }

  async function upload(file) {
    const status = $("upload-status");
    showError("upload-error", null);
    const name = assetName(file.name);
    status.textContent = `uploading ${file.name} as "${name}"…`;
    const form = new FormData();
    form.append("name", name);
    form.append("file", file, file.name);
    try {
      const info = await (await api("assets", { method: "POST", form })).json();
      const listed = await getJSON("assets");
      state.assets = listed.assets;
      renderAssets(info.name);
      status.textContent = `"${info.name}": ${info.width}×${info.height}, used as the background`;
      scheduleGenerate();
    } catch (err) {
      status.textContent = "";
      showError("upload-error", err);
    } finally {
      $("bg-upload").value = "";
    }
  }

  // ---- wiring ---------------------------------------------------------------------------------------------
  function copyText(id, button) {
    const text = $(id).textContent;
    const done = () => {
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => selectText(id));
    } else {
      selectText(id);
    }
  }

  function selectText(id) {
    const range = document.createRange();
    range.selectNodeContents($(id));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function tabs() {
    const list = [...document.querySelectorAll("[role=tab]")];
    const show = (tab) => {
      for (const t of list) {
        const on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
    };
    list.forEach((tab, i) => {
      tab.addEventListener("click", () => show(tab));
      tab.addEventListener("keydown", (e) => {
        if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
        const next = list[(i + (e.key === "ArrowRight" ? 1 : list.length - 1)) % list.length];
        show(next);
        next.focus();
      });
    });
  }

  function init() {
    buildPage(); // first: everything below binds to the elements it stamps out
    for (const m of MECHANISMS) {
      pickers[m] = new ClassPicker($(`${m}-class`), () => m, scheduleGenerate);
    }
    interp.from = new ClassPicker($("interp-from"), () => $("interp-mechanism").value, null);
    interp.to = new ClassPicker($("interp-to"), () => $("interp-mechanism").value, null);
    $("key-button").hidden = !state.key;
    $("key-button").addEventListener("click", async () => {
      const key = await askKey("Enter another API key (or cancel to keep the current one).");
      if (key !== null) {
        setKey(key);
        await loadModels();
      }
    });
    $("model-select").addEventListener("change", (e) => selectModel(e.target.value));
    $("mechanisms").addEventListener("submit", (e) => {
      e.preventDefault();
      state.lastRequest = null;
      generate();
    });
    for (const id of ["seed", "shape-seed", "texture-seed", "background-seed", "truncation"]) {
      $(id).addEventListener("change", scheduleGenerate);
    }
    $("truncation").addEventListener("input", () => ($("truncation-value").textContent = $("truncation").value));
    for (const button of document.querySelectorAll("[data-dice]")) {
      button.addEventListener("click", () => {
        $(button.dataset.dice).value = String(randomInt(2 ** 31));
        scheduleGenerate();
      });
    }
    $("bg-asset").addEventListener("change", () => {
      $("background-class").disabled = !!$("bg-asset").value;
      scheduleGenerate();
    });
    $("bg-upload").addEventListener("change", (e) => {
      if (e.target.files.length) upload(e.target.files[0]);
    });
    for (const button of document.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => copyText(button.dataset.copy, button));
    }
    tabs();
    $("grid-form").addEventListener("submit", (e) => {
      e.preventDefault();
      buildGrid();
    });
    $("interp-form").addEventListener("submit", (e) => {
      e.preventDefault();
      runInterpolation();
    });
    $("interp-mechanism").addEventListener("change", interpolationDefaults);
    $("batch-form").addEventListener("submit", (e) => {
      e.preventDefault();
      submitBatch();
    });
    $("job-labels").addEventListener("click", () => {
      if (state.job) download(`batches/${state.job}/labels.csv`, `${state.job}-labels.csv`).catch((err) => showError("batch-error", err));
    });
    $("job-cancel").addEventListener("click", async () => {
      if (!state.job) return;
      try {
        showJob(await (await api(`batches/${state.job}/cancel`, { method: "POST" })).json());
      } catch (err) {
        showError("batch-error", err);
      }
    });
    loadModels();
  }

  document.addEventListener("DOMContentLoaded", init);
})();

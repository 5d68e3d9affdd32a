// The AICPW web DApp: market overview, explorer, provider pages, live task pages and a wallet
// that signs in the browser. Plain JavaScript, no dependencies. Everything from the chain is
// shown with textContent, never parsed as HTML.

import { b64url, bytesToHex, cidV1, contentKey, encrypt, hexToBytes, openResult, pack, seal, x25519Key } from "/seal.js";

const main = document.getElementById("main");
const BASE_UNITS = 1000000n;

/** An element: tag, attributes (on* are listeners), children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(typeof c === "string" || typeof c === "number" || typeof c === "bigint" ? String(c) : c);
  }
  return el;
}

function show(...children) {
  main.replaceChildren(...children);
  main.focus({ preventScroll: true });
}

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e ? `${e.message} (code ${e.code})` : `HTTP ${status}`);
    this.code = e && e.code;
  }
}

async function api(path, init) {
  const r = await fetch(path, init);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/** Base units (a decimal string) as tokens. */
function tokens(units) {
  if (units === undefined || units === null) return "";
  const n = BigInt(units);
  const whole = n / BASE_UNITS, frac = (n % BASE_UNITS).toString().padStart(6, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac} AIC` : `${whole} AIC`;
}

/** Tokens typed by a person ("1.5") as base units, or null. */
function parseTokens(text) {
  const m = /^\s*(\d{1,30})(?:\.(\d{1,6}))?\s*$/.exec(text);
  if (!m) return null;
  return (BigInt(m[1]) * BASE_UNITS + BigInt((m[2] || "").padEnd(6, "0"))).toString();
}

const link = (href, text) => h("a", { href }, text);
const short = (hex) => (hex && hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex);
const card = (k, v, id) => h("div", { class: "card" }, h("div", { class: "v", "data-metric": id }, v), h("div", { class: "k" }, k));

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

function kv(object) {
  return table(["Field", "Value"], Object.entries(object).map(([k, v]) =>
    [k, h("span", { class: "mono" }, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))]));
}

/** A line chart of numbers, as SVG. */
function chart(values, label) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 100 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * 100},${38 - (v / max) * 36}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

/** Every item of a paged list (at most `max`). */
async function all(path, max = 5000) {
  let items = [], cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const r = await fetch(`${path}${cursor ? `${sep}cursor=${cursor}` : ""}`);
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
    items = items.concat(await r.json());
    cursor = r.headers.get("aicpw-next-cursor");
  } while (cursor && items.length < max);
  return items;
}

// --- Market overview -------------------------------------------------------------------------

async function market() {
  const [status, nodes, tasks] = await Promise.all([api("/v1/status"), all("/v1/nodes"), all("/v1/tasks")]);
  const online = nodes.filter((n) => n.online);
  const gpus = {};
  for (const n of nodes) if (n.hardware.gpu_count > 0) gpus[n.hardware.gpu_model] = (gpus[n.hardware.gpu_model] || 0) + n.hardware.gpu_count;
  const prices = nodes.map((n) => BigInt(n.price_per_hour)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const byState = {};
  for (const t of tasks) byState[t.state] = (byState[t.state] || 0) + 1;
  const units = nodes.reduce((s, n) => s + BigInt(n.proven_units || 0), 0n);
  const heights = [];
  for (let hgt = Math.max(1, status.height - 29); hgt <= status.height; hgt++) heights.push(hgt);
  const blocks = await Promise.all(heights.map((x) => api(`/v1/blocks/${x}`).catch(() => null)));
  show(
    h("h1", {}, "Market"),
    h("div", { class: "cards" },
      card("block height", status.height, "height"),
      card("nodes online", `${online.length} / ${nodes.length}`, "nodes-online"),
      card("proven compute units", units, "units"),
      card("price per hour", prices.length ? `${tokens(prices[0])} – ${tokens(prices[prices.length - 1])}` : "no nodes", "prices"),
      card("tasks queued", status.queued, "queued"),
      card("mempool", status.mempool, "mempool")),
    h("h2", {}, "GPUs by model"),
    Object.keys(gpus).length ? table(["Model", "GPUs"], Object.entries(gpus)) : h("p", {}, "No GPU nodes."),
    h("h2", {}, "Tasks by state"),
    table(["State", "Tasks"], Object.entries(byState)),
    h("h2", {}, "Transactions per block, last 30 blocks"),
    chart(blocks.map((b) => (b ? b.txs.length : 0)), "transactions per block"),
    h("h2", {}, "Nodes"),
    table(["Node", "GPU", "Price / h", "Online", "Reputation"], nodes.slice(0, 200).map((n) =>
      [link(`#/node/${n.id}`, `node ${n.id}`), `${n.hardware.gpu_count} × ${n.hardware.gpu_model || "CPU"}`,
        tokens(n.price_per_hour), n.online ? "yes" : "no", reputation(n)])));
}

const reputation = (n) => `${n.reputation.score_permille}‰`;

// --- Explorer --------------------------------------------------------------------------------

async function explorer() {
  const status = await api("/v1/status");
  const heights = [];
  for (let x = status.height; x > Math.max(0, status.height - 15); x--) heights.push(x);
  const blocks = await Promise.all(heights.map((x) => api(`/v1/blocks/${x}`)));
  const tasks = await api("/v1/tasks?limit=20");
  show(
    h("h1", {}, "Explorer"),
    h("p", {}, `Chain ${status.chain_id}, height ${status.height}, ${status.accounts} accounts, ${status.tasks} tasks.`),
    h("h2", {}, "Latest blocks"),
    table(["Height", "Transactions", "Time"], blocks.map((b) =>
      [link(`#/block/${b.header.height}`, String(b.header.height)), String(b.txs.length), new Date(b.header.time_ms).toISOString()])),
    h("h2", {}, "Latest tasks"),
    taskTable(tasks));
}

function taskTable(tasks) {
  return table(["Task", "State", "Requester", "Escrow"], tasks.map((t) =>
    [link(`#/task/${t.id}`, `task ${t.id}`), t.state, link(`#/account/${t.requester}`, short(t.requester)), tokens(t.escrow)]));
}

async function block(height) {
  const b = await api(`/v1/blocks/${encodeURIComponent(height)}`);
  show(h("h1", {}, `Block ${b.header.height}`), h("p", { class: "mono" }, b.hash),
    table(["Transaction", "Kind", "Signer"], b.txs.map((t) =>
      [h("span", { class: "mono" }, short(t.tx_id)), t.kind, link(`#/account/${t.signer}`, short(t.signer))])),
    h("h2", {}, "Header"), kv(b.header));
}

async function account(address) {
  const a = await api(`/v1/accounts/${encodeURIComponent(address)}`);
  const tasks = await api(`/v1/tasks?requester=${encodeURIComponent(address)}&limit=50`);
  show(h("h1", {}, "Account"), h("p", { class: "mono", "data-address": a.address }, a.address),
    h("div", { class: "cards" }, card("balance", tokens(a.balance), "balance"), card("staked", tokens(a.staked), "staked"),
      card("nonce", a.nonce, "nonce"), card("stored bytes", a.store_bytes, "store-bytes")),
    h("h2", {}, "Nodes"), h("p", {}, String(a.nodes)),
    h("h2", {}, "Tasks it submitted"), taskTable(tasks));
}

/** A list that fills with the node's live events (server-sent events) until the page changes. */
function liveEvents(query, onEvent = () => {}) {
  const list = h("ol", { class: "events", "aria-live": "polite", "aria-label": "live events" });
  const source = new EventSource(`/v1/events?${query}`);
  source.onmessage = (m) => { list.append(h("li", {}, m.data)); onEvent(); };
  source.addEventListener("lagged", () => list.append(h("li", { class: "error" }, "missed events: reload")));
  closers.push(() => source.close());
  return list;
}

// --- Task page: live progress, the requester's key grants, result, accept, rate ---------------

/** What a lease of a node has earned so far: a paid lease its cost (or what was released, if
 * more), any other what was released to it per verified interval (clawed back if overruled). */
function leaseEarned(l) {
  const released = BigInt(l.released), cost = BigInt(l.cost);
  return l.verdict === "paid" ? (cost > released ? cost : released) : released;
}

const roleOf = (l) => (typeof l.role === "string" ? l.role : JSON.stringify(l.role));

function leaseTable(t) {
  return table(["Node", "Role", "Progress", "Committed", "Revealed", "Verdict", "Released", "Cost"], t.leases.map((l) =>
    [link(`#/node/${l.node}`, `node ${l.node}`), roleOf(l), `${l.progress_permille / 10}%`, l.commitment ? "yes" : "no",
      l.reveal ? short(l.reveal.output_hash) : "no", l.verdict, tokens(l.released), tokens(l.cost)]));
}

/** `requester::grant_placed`: seals the task's content key to every node placed on it that
 * still waits for it (a pending lease without a commitment or a grant), and to no other. */
async function grantWaiting(wallet, t) {
  if (!t.terms.encrypted) return [];
  const granted = new Set((t.key_grants || []).map((g) => g.node));
  const waiting = t.leases.filter((l) => l.verdict === "pending" && !l.commitment && !granted.has(l.node)).map((l) => l.node);
  if (!waiting.length) return [];
  const key = await contentKey(hexToBytes(wallet.seed), hexToBytes(t.answer_commitment));
  const key_grants = [];
  for (const node of waiting) {
    const n = await api(`/v1/nodes/${node}`);
    key_grants.push({ node, sealed_key: bytesToHex(await seal(hexToBytes(n.x25519_key), key)) });
  }
  await send(wallet, { type: "grant_keys", task: t.id, key_grants });
  return waiting;
}

/** Numbers a task's log reports as `loss: X` (or `loss=X`), in order. */
const lossCurve = (log) => Array.from(log.matchAll(/\bloss\s*[:=]\s*(-?[0-9.]+(?:e-?\d+)?)/gi), (m) => Number(m[1])).filter(Number.isFinite);

/** Downloads the result, checks its CID, opens it with this browser's key and checks the
 * output hash the provider committed: `aicpw task result`, in the page. */
async function showResult(wallet, t, area) {
  const cid = t.result.result_cid;
  const response = await fetch(`/store/${encodeURIComponent(cid)}`);
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const blob = new Uint8Array(await response.arrayBuffer());
  if ((await cidV1(blob)) !== cid) throw new Error("the downloaded result does not have the CID the ledger names");
  const result = await openResult(await x25519Key(hexToBytes(wallet.seed)), blob, t.result.output_hash);
  const log = new TextDecoder().decode(result.log);
  const losses = lossCurve(log);
  area.replaceChildren(
    h("p", { class: "ok", id: "result-status" }, `decrypted; output hash ${result.hash} matches the commitment`),
    table(["Output", "Bytes"], result.outputs.map(([path, bytes]) => [
      h("a", { href: URL.createObjectURL(new Blob([bytes])), download: path.replace(/\//g, "_"), "data-output": path }, path), String(bytes.length)])),
    losses.length > 1 ? h("div", {}, h("h3", {}, "Loss reported by the task"), chart(losses, "loss curve")) : null,
    h("h3", {}, "Log tail"), h("pre", { id: "task-log" }, log));
}

async function task(id) {
  let t = await api(`/v1/tasks/${encodeURIComponent(id)}`);
  const wallet = await loadKey();
  const mine = wallet && wallet.address === t.requester;
  const state = h("span", { "data-task-state": "" }, t.state);
  const progress = h("progress", { id: "task-progress", max: 1000, value: 0, "aria-label": "task progress" });
  const note = h("p", { role: "status", id: "task-status" });
  const money = h("div", { class: "cards" });
  const leases = h("div", {});
  const resultArea = h("section", { id: "result", "aria-label": "result" });
  const actions = h("div", { class: "stack" });
  const fail = (e) => { note.className = "error"; note.textContent = e.message; };
  let busy = false;
  const render = () => {
    state.textContent = t.state;
    progress.value = Math.max(0, ...t.leases.map((l) => l.progress_permille), ["verifying", "completed"].includes(t.state) ? 1000 : 0);
    money.replaceChildren(card("escrow", tokens(t.escrow)), card("paid", tokens(t.paid), "task-paid"), card("refunded", tokens(t.refunded)), card("attempts", t.attempts));
    leases.replaceChildren(leaseTable(t));
    if (!mine) return;
    const can = { result: t.result && t.result.result_cid, accept: t.state === "verifying", rate: t.state === "completed" && !t.rating };
    for (const el of [...actions.children]) if (!can[el.dataset.action]) el.remove();
    const has = (a) => actions.querySelector(`[data-action="${a}"]`);
    if (can.result && !has("result")) actions.append(h("button", { type: "button", id: "decrypt", "data-action": "result", onclick: () => showResult(wallet, t, resultArea).catch(fail) }, "Download and decrypt the result"));
    if (can.accept && !has("accept")) actions.append(h("button", { type: "button", id: "accept", "data-action": "accept", onclick: async () => {
      try { await send(wallet, { type: "accept_result", task: t.id }); note.className = "ok"; note.textContent = "accepted: the provider is paid"; await refresh(); } catch (e) { fail(e); }
    } }, "Accept the result (pays the provider)"));
    if (can.rate && !has("rate")) {
      const stars = h("select", { id: "stars", "aria-label": "stars" }, [5, 4, 3, 2, 1].map((n) => h("option", { value: n }, `${n} stars`)));
      actions.append(h("form", { id: "rate", "data-action": "rate", onsubmit: async (e) => {
        e.preventDefault();
        try { await send(wallet, { type: "rate_task", task: t.id, stars: Number(stars.value) }); note.className = "ok"; note.textContent = `rated ${stars.value} stars`; } catch (err) { fail(err); }
      } }, stars, " ", h("button", { type: "submit" }, "Rate the provider")));
    }
  };
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      t = await api(`/v1/tasks/${encodeURIComponent(id)}`);
      if (mine) {
        const granted = await grantWaiting(wallet, t);
        if (granted.length) { note.className = "ok"; note.textContent = `content key granted to node ${granted.join(", ")}`; }
      }
      render();
    } catch (e) { fail(e); } finally { busy = false; }
  }
  const events = liveEvents(`task=${encodeURIComponent(id)}`, refresh);
  const timer = setInterval(refresh, 1000);
  closers.push(() => clearInterval(timer));
  render();
  show(h("h1", {}, `Task ${t.id} `, h("small", {}, t.terms.name)), h("p", {}, "State: ", state, " ", progress), note,
    mine ? h("p", {}, "You submitted this task: keep this page open until it runs, so this browser can grant the content key to the nodes placed on it.") : null,
    actions, resultArea, money,
    h("h2", {}, "Verification and settlement"), leases,
    h("h2", {}, "Live events"), events,
    h("h2", {}, "Terms"), kv(t.terms));
  refresh();
}

// --- Submit: a task file, its inputs sealed in the browser and uploaded, the budget locked ----

const EXAMPLE_TASK = `version: 1
name: tiny-training
command: python3
args: [train.py]
inputs: [train.py]
outputs: [model.txt]
time_limit_secs: 60
budget: "1000000"
max_price_per_hour: "3600000"
`;

/** `PUT /store` with the account's signed aicpw-upload header; reports bytes sent as it goes. */
async function upload(wallet, blob, cid, onProgress) {
  const { chain_id } = await api("/v1/status");
  const time = Date.now();
  const message = `aicpw 2026-12 store upload signature v1\n${chain_id}\nPUT /store\n${cid}\n${blob.length}\n${time}`;
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, wallet.key, new TextEncoder().encode(message));
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/store?expect=${encodeURIComponent(cid)}`);
    xhr.setRequestHeader("aicpw-upload", `${wallet.address} ${time} ${blob.length} ${bytesToHex(signature)}`);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status >= 400) reject(new ApiError(xhr.status, body)); else { onProgress(blob.length); resolve(body); }
    };
    xhr.onerror = () => reject(new Error("the upload did not reach the node"));
    xhr.send(blob);
  });
}

/** `requester::submit`, in the page: the node reads the task file (one parser for every client),
 * the inputs are packed with its manifest, sealed under the task's content key, uploaded, and the
 * terms signed with the inputs' CID and this account's result key. Returns the task id. */
async function submitTask(wallet, yaml, chosen, onProgress, say) {
  const spec = await api("/v1/task-files", { method: "POST", headers: { "content-type": "text/plain; charset=utf-8" }, body: yaml });
  const byName = new Map(chosen.map((f) => [f.name, f]));
  const files = [];
  for (const input of spec.inputs) {
    const name = input.split("/").filter(Boolean).pop();
    const file = byName.get(name);
    if (!file) throw new Error(`choose the input file ${name}: the task file names it (directories are not supported here; use the CLI)`);
    files.push([name, new Uint8Array(await file.arrayBuffer())]);
  }
  const seed = hexToBytes(wallet.seed);
  const answerCommitment = crypto.getRandomValues(new Uint8Array(32));
  const plain = pack(spec.manifest, files);
  const blob = spec.terms.encrypted ? encrypt(await contentKey(seed, answerCommitment), plain) : plain;
  const cid = await cidV1(blob);
  say(`uploading ${blob.length} bytes ${spec.terms.encrypted ? "(sealed)" : "(plain)"} as ${cid}`);
  await upload(wallet, blob, cid, onProgress);
  const terms = { ...spec.terms, inputs_cid: cid, result_key: bytesToHex((await x25519Key(seed)).publicKey) };
  say("signing the task and locking its budget in escrow");
  const receipt = await send(wallet, { type: "submit_task", terms, answer_commitment: bytesToHex(answerCommitment) });
  const submitted = receipt.events.find((e) => e.event === "task_submitted");
  if (!submitted) throw new Error("the node's receipt has no task_submitted event");
  return submitted.task;
}

async function submit() {
  const wallet = await loadKey();
  if (!wallet) return show(h("h1", {}, "Submit a task"), h("p", {}, "Create or import a key in the ", link("#/wallet", "wallet"), " first."));
  const yaml = h("textarea", { id: "task-yaml", rows: 12, cols: 70, spellcheck: "false" }, EXAMPLE_TASK);
  const yamlFile = h("input", { type: "file", id: "task-file", accept: ".yaml,.yml,text/yaml" });
  const inputs = h("input", { type: "file", id: "inputs", multiple: true });
  const bar = h("progress", { id: "upload-progress", max: 1, value: 0, "aria-label": "upload progress" });
  const out = h("p", { role: "status", id: "submit-status" });
  const opened = h("p", {});
  const say = (text, kind = "") => { out.className = kind; out.textContent = text; };
  yamlFile.addEventListener("change", async () => { yaml.value = await yamlFile.files[0].text(); });
  const form = h("form", { class: "stack", id: "submit", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const id = await submitTask(wallet, yaml.value, [...inputs.files], (sent) => { bar.max = Math.max(1, bar.max, sent); bar.value = sent; }, say);
      say(`submitted task ${id}`, "ok");
      opened.replaceChildren(link(`#/task/${id}`, `Open task ${id}: follow it and grant its key`));
      opened.firstChild.id = "open-task";
    } catch (err) { say(err.message, "error"); }
  } },
  h("label", { for: "task-yaml" }, "Task file (YAML, see docs/task-spec.md)"), yaml,
  h("label", { for: "task-file" }, "or load a task file"), yamlFile,
  h("label", { for: "inputs" }, "Input files the task file names"), inputs,
  h("button", { type: "submit" }, "Seal, upload and submit"));
  show(h("h1", {}, "Submit a task"),
    h("p", {}, "The inputs are sealed in this browser under a key only the nodes placed on the task receive; the budget is locked in escrow."),
    form, h("p", {}, "Upload: ", bar), out, opened);
}

async function node(id) {
  const n = await api(`/v1/nodes/${encodeURIComponent(id)}`);
  const [owner, leases, tasks] = await Promise.all([api(`/v1/accounts/${n.owner}`), api(`/v1/nodes/${n.id}/leases`), all(`/v1/tasks?node=${n.id}`)]);
  const own = tasks.flatMap((t) => t.leases.filter((l) => l.node === n.id).map((l) => ({ t, l })));
  const earned = own.reduce((sum, { l }) => sum + leaseEarned(l), 0n);
  const c = n.capacity;
  show(h("h1", {}, `Provider node ${n.id}`),
    h("div", { class: "cards" }, card("earned on tasks the ledger holds", tokens(earned), "earned"),
      card("owner balance", tokens(owner.balance), "owner-balance"),
      card("owner stake", tokens(owner.staked)), card("status", typeof n.status === "string" ? n.status : JSON.stringify(n.status)), card("online", n.online ? "yes" : "no"),
      card("reputation", reputation(n), "reputation"), card("clean streak", n.reputation.clean_streak),
      card("tasks completed / failed / expired", `${n.reputation.completed} / ${n.reputation.failed} / ${n.reputation.expired}`),
      card("audits passed / failed", `${n.reputation.audits_passed} / ${n.reputation.audits_failed}`),
      card("capacity challenges passed / missed / failed", `${c.passed} / ${c.missed} / ${c.failed}`, "challenges"),
      card("puzzles solved / missed", `${c.puzzles_solved} / ${c.puzzles_missed}`),
      card("proven units", n.proven_units), card("running", n.running)),
    h("p", {}, "Owner: ", link(`#/account/${n.owner}`, n.owner)),
    h("h2", {}, "Hardware"), kv(n.hardware),
    h("h2", {}, "Endpoint"), h("p", { class: "mono", "data-endpoint": "" }, n.endpoint),
    h("h2", {}, "Leases to act on"), table(["Task", "Reveal open"], leases.map((l) => [link(`#/task/${l.task.id}`, `task ${l.task.id}`), String(l.reveal_open)])),
    h("h2", {}, "Leases and earnings"), table(["Task", "Role", "Verdict", "Earned"], own.map(({ t, l }) =>
      [link(`#/task/${t.id}`, `task ${t.id}`), roleOf(l), l.verdict, tokens(leaseEarned(l))])),
    h("h2", {}, "Appeal"), h("p", {}, n.appeal ? JSON.stringify(n.appeal) : "none", ` (${n.appeals} in its life)`),
    h("h2", {}, "Live events"), liveEvents(`node=${n.id}`));
}

// --- Wallet: a key held by this browser, signing with WebCrypto Ed25519 ------------------------

const PKCS8_ED25519 = "302e020100300506032b657004220420";

/** The key from a 32-byte seed (hex), as the CLI's key file holds it: WebCrypto key and address. */
async function keyFromSeed(seedHex) {
  if (!/^[0-9a-f]{64}$/i.test(seedHex)) throw new Error("a key file's secret_key is 64 hex characters");
  const key = await crypto.subtle.importKey("pkcs8", hexToBytes(PKCS8_ED25519 + seedHex), { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  return { key, seed: seedHex.toLowerCase(), address: bytesToHex(b64url(jwk.x)) };
}

async function loadKey() {
  const seed = localStorage.getItem("aicpw-key");
  return seed ? keyFromSeed(seed) : null;
}

/** Signs and submits a transaction body; resolves with the committed receipt. */
async function send(wallet, body) {
  const [status, params, acct] = await Promise.all([api("/v1/status"), api("/v1/params"), api(`/v1/accounts/${wallet.address}`)]);
  const tx = { chain_id: status.chain_id, signer: wallet.address, nonce: acct.next_nonce, fee: params.fee_min, body };
  const json = { method: "POST", headers: { "content-type": "application/json" } };
  const { signing_bytes } = await api("/v1/tx/signing-bytes", { ...json, body: JSON.stringify(tx) });
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, wallet.key, hexToBytes(signing_bytes));
  return api("/v1/tx?wait=true", { ...json, body: JSON.stringify({ tx, signature: bytesToHex(signature) }) });
}

async function wallet() {
  const wallet = await loadKey();
  const out = h("p", { role: "status", id: "wallet-status" });
  const fileInput = h("input", { type: "file", id: "keyfile", accept: ".json,application/json" });
  const keyForms = h("section", {},
    h("h2", {}, "Key"),
    h("p", {}, "The key is kept in this browser's local storage for this node's address; anyone who can run script on this origin could read it. Use a key for small amounts."),
    h("button", { type: "button", id: "generate", onclick: async () => {
      const seed = bytesToHex(crypto.getRandomValues(new Uint8Array(32)));
      localStorage.setItem("aicpw-key", (await keyFromSeed(seed)).seed);
      route();
    } }, "Create a new key"),
    " ",
    h("label", { for: "keyfile" }, "or import a key file (aicpw keys new): "), fileInput);
  fileInput.addEventListener("change", async () => {
    try {
      const file = JSON.parse(await fileInput.files[0].text());
      const k = await keyFromSeed(String(file.secret_key || ""));
      if (file.address && file.address !== k.address) throw new Error("the key file's address does not match its key");
      localStorage.setItem("aicpw-key", k.seed);
      route();
    } catch (e) { out.className = "error"; out.textContent = e.message; }
  });
  if (!wallet) return show(h("h1", {}, "Wallet"), keyForms, out);
  const a = await api(`/v1/accounts/${wallet.address}`);
  const to = h("input", { id: "to", name: "to", required: true, pattern: "[0-9a-fA-F]{64}", size: 66 });
  const amount = h("input", { id: "amount", name: "amount", required: true, inputmode: "decimal" });
  const form = h("form", { class: "stack", id: "transfer", onsubmit: async (e) => {
    e.preventDefault();
    const units = parseTokens(amount.value);
    if (!units) { out.className = "error"; out.textContent = "amount: up to 6 decimals"; return; }
    out.className = ""; out.textContent = "signing and sending…";
    try {
      const done = await send(wallet, { type: "transfer", to: to.value.trim().toLowerCase(), amount: units });
      out.className = "ok"; out.textContent = `committed in block ${done.height}`;
      balance.textContent = tokens((await api(`/v1/accounts/${wallet.address}`)).balance);
    } catch (err) { out.className = "error"; out.textContent = err.message; }
  } },
  h("label", { for: "to" }, "To (address)"), to,
  h("label", { for: "amount" }, "Amount (AIC)"), amount,
  h("button", { type: "submit" }, "Sign and send"));
  const balance = h("span", { "data-metric": "wallet-balance" }, tokens(a.balance));
  show(h("h1", {}, "Wallet"),
    h("p", {}, "Address: ", h("span", { class: "mono", id: "address" }, wallet.address)),
    h("p", {}, "Balance: ", balance),
    h("h2", {}, "Transfer"), form, out,
    h("h2", {}, "Your tasks"), taskTable(await api(`/v1/tasks?requester=${wallet.address}&limit=50`)),
    h("p", {}, h("button", { type: "button", onclick: () => { localStorage.removeItem("aicpw-key"); route(); } }, "Forget this key")));
}

// --- Routing ---------------------------------------------------------------------------------

let closers = [];

async function route() {
  for (const close of closers) close();
  closers = [];
  const [, page, arg] = location.hash.split("/");
  const pages = { "": market, explorer, block, account, task, node, wallet, submit };
  const view = pages[page || ""];
  try {
    if (!view) throw new Error("no such page");
    await view(arg && decodeURIComponent(arg));
  } catch (e) {
    show(h("h1", {}, "Not available"), h("p", { class: "error", role: "alert" }, e.message));
  }
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = e.target.q.value.trim();
  let m;
  if (/^\d+$/.test(q)) location.hash = `#/block/${q}`;
  else if (/^[0-9a-fA-F]{64}$/.test(q)) location.hash = `#/account/${q.toLowerCase()}`;
  else if ((m = /^task\s*(\d+)$/i.exec(q))) location.hash = `#/task/${m[1]}`;
  else if ((m = /^node\s*(\d+)$/i.exec(q))) location.hash = `#/node/${m[1]}`;
  else show(h("h1", {}, "Search"), h("p", { class: "error", role: "alert" }, "Type a block height, a 64-hex address, task N or node N."));
});
window.addEventListener("hashchange", route);
route();

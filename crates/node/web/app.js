// The AICPW web DApp: market overview, explorer, provider pages, live task pages and a wallet
// that signs in the browser. Plain JavaScript, no dependencies. Everything from the chain is
// shown with textContent, never parsed as HTML.

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
function liveEvents(query) {
  const list = h("ol", { class: "events", "aria-live": "polite", "aria-label": "live events" });
  const source = new EventSource(`/v1/events?${query}`);
  source.onmessage = (m) => list.append(h("li", {}, m.data));
  source.addEventListener("lagged", () => list.append(h("li", { class: "error" }, "missed events: reload")));
  closers.push(() => source.close());
  return list;
}

async function task(id) {
  const t = await api(`/v1/tasks/${encodeURIComponent(id)}`);
  const state = h("span", { "data-task-state": "" }, t.state);
  const events = liveEvents(`task=${encodeURIComponent(id)}`);
  const refresh = setInterval(async () => {
    const now = await api(`/v1/tasks/${encodeURIComponent(id)}`).catch(() => null);
    if (now) state.textContent = now.state;
  }, 1000);
  closers.push(() => clearInterval(refresh));
  show(h("h1", {}, `Task ${t.id}`), h("p", {}, "State: ", state),
    h("div", { class: "cards" }, card("escrow", tokens(t.escrow)), card("paid", tokens(t.paid)), card("refunded", tokens(t.refunded)), card("attempts", t.attempts)),
    h("h2", {}, "Leases"), table(["Node", "Role"], t.leases.map((l) => [link(`#/node/${l.node}`, `node ${l.node}`), JSON.stringify(l.role)])),
    h("h2", {}, "Live events"), events,
    h("h2", {}, "Terms"), kv(t.terms));
}

async function node(id) {
  const n = await api(`/v1/nodes/${encodeURIComponent(id)}`);
  const [owner, leases, challenges] = await Promise.all([api(`/v1/accounts/${n.owner}`), api(`/v1/nodes/${n.id}/leases`), api(`/v1/challenges?node=${n.id}`)]);
  const passed = challenges.filter((c) => JSON.stringify(c).includes("passed")).length;
  show(h("h1", {}, `Provider node ${n.id}`),
    h("div", { class: "cards" }, card("owner balance (earnings land here)", tokens(owner.balance), "owner-balance"),
      card("owner stake", tokens(owner.staked)), card("status", typeof n.status === "string" ? n.status : JSON.stringify(n.status)), card("online", n.online ? "yes" : "no"),
      card("reputation", reputation(n)), card("clean streak", n.reputation.clean_streak),
      card("audits passed / failed", `${n.reputation.audits_passed} / ${n.reputation.audits_failed}`),
      card("proven units", n.proven_units), card("running", n.running),
      card("current challenges", `${challenges.length} (${passed} passed)`)),
    h("p", {}, "Owner: ", link(`#/account/${n.owner}`, n.owner)),
    h("h2", {}, "Hardware"), kv(n.hardware),
    h("h2", {}, "Endpoint"), h("p", { class: "mono", "data-endpoint": "" }, n.endpoint),
    h("h2", {}, "Leases to act on"), table(["Task", "Reveal open"], leases.map((l) => [link(`#/task/${l.task.id}`, `task ${l.task.id}`), String(l.reveal_open)])),
    h("h2", {}, "Appeal"), h("p", {}, n.appeal ? JSON.stringify(n.appeal) : "none", ` (${n.appeals} in its life)`),
    h("h2", {}, "Live events"), liveEvents(`node=${n.id}`));
}

// --- Wallet: a key held by this browser, signing with WebCrypto Ed25519 ------------------------

const PKCS8_ED25519 = "302e020100300506032b657004220420";
const hexToBytes = (hex) => new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
const bytesToHex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
const b64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

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
  const pages = { "": market, explorer, block, account, task, node, wallet };
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

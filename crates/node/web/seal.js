// The requester's cryptography in the browser, byte for byte what the Rust side does:
// sealed boxes and content encryption (crates/types/src/seal.rs), the keys derived from an
// account's seed (crates/types/src/keys.rs), task bundles and the output hash
// (crates/types/src/bundle.rs) and the CIDv1 of a file (crates/store, `ipfs add --cid-version=1`).
// WebCrypto does X25519, HKDF, SHA-256 and Ed25519; it has no ChaCha20-Poly1305 (RFC 8439) and no
// BLAKE3, so those two are written here. crates/node/tests/browser.rs checks every function
// against vectors made by the Rust code, in chromium.

const enc = new TextEncoder();
const subtle = crypto.subtle;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error("a little-endian machine is needed");

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export const hexToBytes = (hex) => new Uint8Array((hex.match(/../g) || []).map((b) => parseInt(b, 16)));
export const bytesToHex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
export const b64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

/** Little-endian 32-bit words of `bytes[at..at+4*count]`, zero past the end. */
function words(bytes, at, count) {
  const out = new Uint32Array(count);
  const tmp = new Uint8Array(out.buffer);
  tmp.set(bytes.subarray(at, Math.min(bytes.length, at + 4 * count)));
  return out;
}

// --- ChaCha20-Poly1305 (RFC 8439), empty associated data ----------------------------------------

const rotl = (x, n) => (x << n) | (x >>> (32 - n));

function quarter(x, a, b, c, d) {
  x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 16);
  x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 12);
  x[a] += x[b]; x[d] = rotl(x[d] ^ x[a], 8);
  x[c] += x[d]; x[b] = rotl(x[b] ^ x[c], 7);
}

function chachaBlock(key, counter, nonce, state, out) {
  state.set([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
  state.set(key, 4);
  state[12] = counter;
  state.set(nonce, 13);
  out.set(state);
  for (let i = 0; i < 10; i++) {
    quarter(out, 0, 4, 8, 12); quarter(out, 1, 5, 9, 13); quarter(out, 2, 6, 10, 14); quarter(out, 3, 7, 11, 15);
    quarter(out, 0, 5, 10, 15); quarter(out, 1, 6, 11, 12); quarter(out, 2, 7, 8, 13); quarter(out, 3, 4, 9, 14);
  }
  for (let i = 0; i < 16; i++) out[i] += state[i];
}

function chacha20(key, nonce, counter, data) {
  const k = words(key, 0, 8), n = words(nonce, 0, 3);
  const state = new Uint32Array(16), block = new Uint32Array(16), stream = new Uint8Array(block.buffer);
  const out = new Uint8Array(data.length);
  for (let at = 0; at < data.length; at += 64, counter++) {
    chachaBlock(k, counter, n, state, block);
    const end = Math.min(64, data.length - at);
    for (let i = 0; i < end; i++) out[at + i] = data[at + i] ^ stream[i];
  }
  return out;
}

function poly1305(key, message) {
  const view = new DataView(key.buffer, key.byteOffset, 32);
  const le128 = (v, at) => v.getBigUint64(at, true) | (v.getBigUint64(at + 8, true) << 64n);
  const r = le128(view, 0) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = le128(view, 16);
  const p = (1n << 130n) - 5n;
  const m = new DataView(message.buffer, message.byteOffset, message.length);
  let acc = 0n;
  for (let at = 0; at < message.length; at += 16) {
    // Every message here is padded to 16 bytes (RFC 8439 §2.8), so each block is whole.
    acc = ((acc + le128(m, at) + (1n << 128n)) * r) % p;
  }
  acc = (acc + s) & ((1n << 128n) - 1n);
  const tag = new Uint8Array(16);
  for (let i = 0; i < 16; i++) { tag[i] = Number(acc & 0xffn); acc >>= 8n; }
  return tag;
}

function tagOf(key, nonce, ciphertext) {
  const block = new Uint32Array(16);
  chachaBlock(words(key, 0, 8), 0, words(nonce, 0, 3), new Uint32Array(16), block);
  const padded = Math.ceil(ciphertext.length / 16) * 16;
  const mac = new Uint8Array(padded + 16);
  mac.set(ciphertext);
  new DataView(mac.buffer).setBigUint64(padded + 8, BigInt(ciphertext.length), true);
  return poly1305(new Uint8Array(block.buffer, 0, 32), mac);
}

export function aeadEncrypt(key, nonce, plain) {
  const ciphertext = chacha20(key, nonce, 1, plain);
  return concat(ciphertext, tagOf(key, nonce, ciphertext));
}

export function aeadDecrypt(key, nonce, sealed) {
  if (sealed.length < 16) throw new Error("ciphertext is too short");
  const ciphertext = sealed.subarray(0, sealed.length - 16);
  const expected = tagOf(key, nonce, ciphertext), tag = sealed.subarray(sealed.length - 16);
  let differ = 0;
  for (let i = 0; i < 16; i++) differ |= expected[i] ^ tag[i];
  if (differ) throw new Error("decryption failed: wrong key or tampered ciphertext");
  return chacha20(key, nonce, 1, ciphertext);
}

/** `seal::encrypt`: a random nonce, then ciphertext and tag. */
export function encrypt(key, plain) {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  return concat(nonce, aeadEncrypt(key, nonce, plain));
}

/** `seal::decrypt`. */
export function decrypt(key, ciphertext) {
  if (ciphertext.length < 28) throw new Error("ciphertext is too short");
  return aeadDecrypt(key, ciphertext.subarray(0, 12), ciphertext.subarray(12));
}

// --- BLAKE3 (the hash mode only: Hash32::of) ----------------------------------------------------

const IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
// Which message word each round reads: the permutation applied once per round, computed once.
const SCHEDULE = [];
for (let round = 0, order = [...Array(16).keys()]; round < 7; round++, order = PERMUTATION.map((i) => order[i])) SCHEDULE.push(order);
const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function g(s, a, b, c, d, x, y) {
  s[a] = s[a] + s[b] + x; s[d] = rotr(s[d] ^ s[a], 16);
  s[c] += s[d]; s[b] = rotr(s[b] ^ s[c], 12);
  s[a] = s[a] + s[b] + y; s[d] = rotr(s[d] ^ s[a], 8);
  s[c] += s[d]; s[b] = rotr(s[b] ^ s[c], 7);
}

/** The compression function; `out` is the 16-word output (cv in words 0..8). */
function compress({ cv, block, counter, length, flags }) {
  const s = new Uint32Array(16);
  s.set(cv);
  s.set(IV.subarray(0, 4), 8);
  s[12] = counter % 0x100000000;
  s[13] = Math.floor(counter / 0x100000000);
  s[14] = length;
  s[15] = flags;
  const m = block;
  for (const q of SCHEDULE) {
    g(s, 0, 4, 8, 12, m[q[0]], m[q[1]]); g(s, 1, 5, 9, 13, m[q[2]], m[q[3]]);
    g(s, 2, 6, 10, 14, m[q[4]], m[q[5]]); g(s, 3, 7, 11, 15, m[q[6]], m[q[7]]);
    g(s, 0, 5, 10, 15, m[q[8]], m[q[9]]); g(s, 1, 6, 11, 12, m[q[10]], m[q[11]]);
    g(s, 2, 7, 8, 13, m[q[12]], m[q[13]]); g(s, 3, 4, 9, 14, m[q[14]], m[q[15]]);
  }
  for (let i = 0; i < 8; i++) { s[i] ^= s[i + 8]; s[i + 8] ^= cv[i]; }
  return s;
}

const chainingValue = (output) => compress(output).subarray(0, 8);

/** The last block of one 1024-byte chunk, not yet compressed (it may be the root). */
function chunkOutput(input, start, end, index) {
  let cv = IV;
  const blocks = Math.max(1, Math.ceil((end - start) / 64));
  for (let b = 0; ; b++) {
    const at = start + 64 * b;
    const flags = (b === 0 ? CHUNK_START : 0) | (b === blocks - 1 ? CHUNK_END : 0);
    const output = { cv, block: words(input.subarray(0, end), at, 16), counter: index, length: Math.min(64, end - at), flags };
    if (b === blocks - 1) return output;
    cv = chainingValue(output);
  }
}

const parentOutput = (left, right) =>
  ({ cv: IV, block: concat32(left, right), counter: 0, length: 64, flags: PARENT });
const concat32 = (a, b) => { const out = new Uint32Array(16); out.set(a); out.set(b, 8); return out; };

/** `Hash32::of`: BLAKE3 of `input`, 32 bytes. */
export function blake3(input) {
  const chunks = Math.max(1, Math.ceil(input.length / 1024));
  const stack = [];
  for (let i = 0; i < chunks - 1; i++) {
    let cv = chainingValue(chunkOutput(input, i * 1024, (i + 1) * 1024, i));
    for (let total = i + 1; total % 2 === 0; total /= 2) cv = chainingValue(parentOutput(stack.pop(), cv));
    stack.push(cv);
  }
  let output = chunkOutput(input, (chunks - 1) * 1024, input.length, chunks - 1);
  while (stack.length) output = parentOutput(stack.pop(), chainingValue(output));
  const root = compress({ ...output, flags: output.flags | ROOT });
  return new Uint8Array(root.buffer.slice(0, 32));
}

// --- CIDv1 of a file, as `ipfs add --cid-version=1` and crates/store make it ---------------------

const CHUNK_BYTES = 256 * 1024, FILE_NODE_LINKS = 174;
const CODEC_RAW = 0x55, CODEC_DAG_PB = 0x70;

function varint(n) {
  const out = [];
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80); }
  out.push(n);
  return Uint8Array.from(out);
}
const bytesField = (field, bytes) => concat(varint(field * 8 + 2), varint(bytes.length), bytes);
const varintField = (field, n) => concat(varint(field * 8), varint(n));

async function cidBytes(codec, block) {
  return concat(Uint8Array.of(1, codec, 0x12, 0x20), new Uint8Array(await subtle.digest("SHA-256", block)));
}

function base32(bytes) {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let out = "b", bits = 0, value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte; bits += 8;
    while (bits >= 5) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** A UnixFS file node over `children` (dag-pb: links, then the UnixFS data). */
async function fileParent(children) {
  const content = children.reduce((n, c) => n + c.content, 0);
  const links = children.map((c) => bytesField(2, concat(bytesField(1, c.cid), bytesField(2, new Uint8Array()), varintField(3, c.cumulative))));
  const data = concat(varintField(1, 2), varintField(3, content), ...children.map((c) => varintField(4, c.content)));
  const block = concat(...links, bytesField(1, data));
  const cumulative = children.reduce((n, c) => n + c.cumulative, block.length);
  return { cid: await cidBytes(CODEC_DAG_PB, block), content, cumulative };
}

/** The CID `ipfs add --cid-version=1` gives `content`: raw leaves of 256 KiB, the balanced layout. */
export async function cidV1(content) {
  const leaves = [];
  for (let at = 0; at < content.length || leaves.length === 0; at += CHUNK_BYTES) {
    const chunk = content.subarray(at, at + CHUNK_BYTES);
    leaves.push({ cid: await cidBytes(CODEC_RAW, chunk), content: chunk.length, cumulative: chunk.length });
  }
  let next = 1;
  const fill = async (children, depth) => {
    while (children.length < FILE_NODE_LINKS && next < leaves.length) {
      children.push(depth === 1 ? leaves[next++] : await fileParent(await fill([], depth - 1)));
    }
    return children;
  };
  let root = leaves[0];
  for (let depth = 1; next < leaves.length; depth++) root = await fileParent(await fill([root], depth));
  return base32(root.cid);
}

// --- Keys derived from an account's seed, and sealed boxes ----------------------------------------

async function hkdf(ikm, salt, info) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: enc.encode(info) }, key, 256));
}

const PKCS8_X25519 = "302e020100300506032b656e04220420";

/** `Keypair::x25519_secret`/`x25519_public`: the account's X25519 key, from its seed. */
export async function x25519Key(seed) {
  const secret = await hkdf(seed, enc.encode("aicpw x25519"), "aicpw 2026-11 x25519 key v1");
  const key = await subtle.importKey("pkcs8", concat(hexToBytes(PKCS8_X25519), secret), { name: "X25519" }, true, ["deriveBits"]);
  return { key, publicKey: b64url((await subtle.exportKey("jwk", key)).x) };
}

/** `Keypair::content_key`: a task's content key, from the seed and the task's answer commitment. */
export const contentKey = (seed, answerCommitment) => hkdf(seed, answerCommitment, "aicpw 2026-12 task content key v1");

/** X25519 with `public`; refuses a key of small order, as `seal::key_is_usable` does. */
async function shared(privateKey, publicKey) {
  const weak = new Error("the X25519 key is of small order: anything sealed with it could be opened by anyone");
  let bits;
  try {
    const peer = await subtle.importKey("raw", publicKey, { name: "X25519" }, false, []);
    bits = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256));
  } catch { throw weak; }
  if (bits.every((b) => b === 0)) throw weak;
  return bits;
}

const boxKey = (secret, ephemeral, recipient) => hkdf(secret, concat(ephemeral, recipient), "aicpw 2026-11 sealed box v1");

/** `seal::seal`: to `recipient` (32 bytes) with a fresh ephemeral key. */
export async function seal(recipient, plain) {
  const ephemeral = await subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
  const ephemeralPublic = new Uint8Array(await subtle.exportKey("raw", ephemeral.publicKey));
  const key = await boxKey(await shared(ephemeral.privateKey, recipient), ephemeralPublic, recipient);
  return concat(ephemeralPublic, aeadEncrypt(key, new Uint8Array(12), plain));
}

/** `seal::open` with the account's X25519 key (from `x25519Key`). */
export async function open(own, sealed) {
  if (sealed.length < 48) throw new Error("ciphertext is too short");
  const ephemeral = sealed.subarray(0, 32);
  const key = await boxKey(await shared(own.key, ephemeral), ephemeral, own.publicKey);
  return aeadDecrypt(key, new Uint8Array(12), sealed.subarray(32));
}

// --- Bundles ------------------------------------------------------------------------------------

const MAGIC = enc.encode("AICPWB1\n");
export const RESULT_LOG_PATH = "logs/task.log";
const isPlainPath = (p) => p.length > 0 && p.length <= 1024 && !p.startsWith("/") && p.split("/").every((x) => x && x !== "." && x !== "..");

/** The manifest's JSON as serde writes `bundle::Manifest`: its fields in order, a container
 * task's `image` and `image_archive` only when set. */
function manifestJson({ command, args, outputs, image, image_archive }) {
  const fields = { command, args, outputs };
  if (image !== undefined && image !== null) fields.image = image;
  if (image_archive !== undefined && image_archive !== null) fields.image_archive = image_archive;
  return JSON.stringify(fields);
}

/** `bundle::pack`: the manifest and the files. */
export function pack(manifest, files) {
  const json = enc.encode(manifestJson(manifest));
  const parts = [MAGIC, u32(json.length), json, u32(files.length)];
  for (const [path, bytes] of files) {
    if (!isPlainPath(path)) throw new Error(`unsafe path in bundle: ${path}`);
    const name = enc.encode(path);
    const size = new Uint8Array(8);
    new DataView(size.buffer).setBigUint64(0, BigInt(bytes.length), true);
    parts.push(u32(name.length), name, size, bytes);
  }
  return concat(...parts);
}
const u32 = (n) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };

/** `bundle::unpack`: the manifest and the files, every length and path checked. */
export function unpack(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let at = 0;
  const take = (n) => {
    if (n > bytes.length - at) throw new Error("bundle ended early");
    at += n;
    return bytes.subarray(at - n, at);
  };
  if (bytesToHex(take(8)) !== bytesToHex(MAGIC)) throw new Error("not a bundle (bad magic)");
  const manifestLength = view.getUint32(at, true); take(4);
  if (manifestLength > 64 * 1024) throw new Error("bundle exceeds a limit: manifest");
  const manifest = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(take(manifestLength)));
  const count = view.getUint32(at, true); take(4);
  if (count > 4096) throw new Error("bundle exceeds a limit: file count");
  const files = [];
  for (let i = 0; i < count; i++) {
    const pathLength = view.getUint32(at, true); take(4);
    const path = new TextDecoder("utf-8", { fatal: true }).decode(take(pathLength));
    if (!isPlainPath(path)) throw new Error(`unsafe path in bundle: ${path}`);
    const size = view.getBigUint64(at, true); take(8);
    if (size > BigInt(bytes.length)) throw new Error("bundle ended early");
    files.push([path, take(Number(size))]);
  }
  if (at !== bytes.length) throw new Error("bundle ended early");
  return { manifest, files };
}

/** `bundle::output_hash`: BLAKE3 of the bundle of the manifest and the outputs (hex). */
export const outputHash = (manifest, outputs) => bytesToHex(blake3(pack(manifest, outputs)));

/** What `aicpw task result` does with a result blob before writing it: opens the content key
 * sealed to the requester, decrypts, unpacks, splits off the log tail and checks the output hash
 * the provider committed. */
export async function openResult(own, blob, committedHash) {
  const sealedKey = 32 + 48;
  if (blob.length < sealedKey) throw new Error("the result is too short to be sealed");
  const key = await open(own, blob.subarray(0, sealedKey));
  if (key.length !== 32) throw new Error("bad content key");
  const { manifest, files } = unpack(decrypt(key, blob.subarray(sealedKey)));
  const last = files[files.length - 1];
  if (!last || last[0] !== RESULT_LOG_PATH) throw new Error(`a result bundle ends with ${RESULT_LOG_PATH}`);
  const outputs = files.slice(0, -1);
  const hash = outputHash(manifest, outputs);
  if (hash !== committedHash) throw new Error("the result does not match the output hash the provider committed");
  return { manifest, outputs, log: last[1], hash };
}

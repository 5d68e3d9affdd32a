// Times the web page's cryptography (/seal.js) in chromium on random content of 1 and 16 MiB:
// encrypt and decrypt (ChaCha20-Poly1305 in JavaScript), the CIDv1 (SHA-256 from WebCrypto) and
// BLAKE3 (the output hash, in JavaScript). Prints milliseconds as JSON; not a test.
// Usage: aicpw node start --dev &  node bench-seal.mjs http://127.0.0.1:8645
import { chromium } from "playwright-core";
const url = process.argv[2] || "http://127.0.0.1:8645";
const browser = await chromium.launch({ executablePath: process.env.AICPW_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage();
await page.goto(`${url}/#/`);
const r = await page.evaluate(async () => {
  const s = await import("/seal.js");
  const out = {};
  for (const mib of [1, 16]) {
    const n = mib * 1024 * 1024;
    const data = new Uint8Array(n); for (let i = 0; i < n; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    const key = crypto.getRandomValues(new Uint8Array(32));
    let t = performance.now(); const c = s.encrypt(key, data); const enc = performance.now() - t;
    t = performance.now(); s.decrypt(key, c); const dec = performance.now() - t;
    t = performance.now(); await s.cidV1(c); const cid = performance.now() - t;
    t = performance.now(); s.blake3(data); const b3 = performance.now() - t;
    out[`${mib}MiB`] = { encrypt_ms: Math.round(enc), decrypt_ms: Math.round(dec), cid_ms: Math.round(cid), blake3_ms: Math.round(b3) };
  }
  return out;
});
console.log(JSON.stringify(r));
await browser.close();

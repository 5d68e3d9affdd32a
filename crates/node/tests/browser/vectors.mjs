// Checks the web page's cryptography (/seal.js, as the node serves it) in chromium against
// vectors the Rust code made (crates/node/tests/browser.rs writes them), and answers with a box
// sealed and a blob encrypted by the page, which the Rust test opens.
// Usage: node vectors.mjs URL VECTORS_FILE
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const [url, file] = process.argv.slice(2);
const vectors = JSON.parse(readFileSync(file, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.AICPW_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${url}/#/`);
  const answer = await page.evaluate(async (v) => {
    const s = await import("/seal.js");
    const failures = [];
    let checked = 0;
    const check = (what, ok) => { checked++; if (!ok) failures.push(what); };
    const refuses = async (what, run) => {
      try { await run(); failures.push(`${what} was accepted`); } catch { checked++; }
    };
    const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => ((i * 7 + 3) % 251));
    const hex = s.bytesToHex, bytes = s.hexToBytes, text = (b) => new TextDecoder().decode(b);
    check("blake3 of every length", v.blake3.every(([n, h]) => hex(s.blake3(pattern(n))) === h));
    const cids = [];
    for (const [n, cid] of v.cids) cids.push((await s.cidV1(pattern(n))) === cid);
    check(`CIDs ${JSON.stringify(cids)}`, cids.every(Boolean));
    const seed = bytes(v.seed);
    const own = await s.x25519Key(seed);
    check("the account's X25519 key", hex(own.publicKey) === v.x25519_public);
    const contentKey = await s.contentKey(seed, bytes(v.salt));
    check("the task's content key", hex(contentKey) === v.content_key);
    check("decrypt", text(s.decrypt(contentKey, bytes(v.encrypted))) === "inputs of a task");
    check("open a sealed box", text(await s.open(own, bytes(v.sealed))) === "a content key");
    const files = v.files.map(([p, h]) => [p, bytes(h)]);
    check("pack", hex(s.pack(v.manifest, files)) === v.packed);
    check("pack a container task's manifest", hex(s.pack(v.container, files.slice(0, 2))) === v.packed_container);
    const unpacked = s.unpack(bytes(v.packed));
    const same = (a, b) => ["command", "args", "outputs", "image", "image_archive"].every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
    check("unpack", same(unpacked.manifest, v.manifest) &&
      unpacked.files.length === files.length && unpacked.files.every(([p, b], i) => p === files[i][0] && hex(b) === hex(files[i][1])));
    const result = await s.openResult(own, bytes(v.result), v.output_hash);
    check("the result envelope", result.hash === v.output_hash && result.outputs.length === 2 &&
      text(result.outputs[0][1]) === "done" && text(result.log) === "loss: 0.5\nloss: 0.25\n");
    // Refusals: a wrong committed hash, a tampered byte anywhere, a key of small order, another
    // account's key, a truncated bundle.
    await refuses("a result under another hash", () => s.openResult(own, bytes(v.result), "00".repeat(32)));
    for (const at of [0, 40, 79, 80, 100, bytes(v.result).length - 1]) {
      const tampered = bytes(v.result); tampered[at] ^= 1;
      await refuses(`a result tampered at ${at}`, () => s.openResult(own, tampered, v.output_hash));
    }
    const tampered = bytes(v.encrypted); tampered[20] ^= 0x80;
    await refuses("a tampered ciphertext", () => s.decrypt(contentKey, tampered));
    await refuses("sealing to a key of small order", () => s.seal(bytes(v.weak_key), bytes("00")));
    const forged = s.concat(bytes(v.weak_key), new Uint8Array(48));
    await refuses("a box from a key of small order", () => s.open(own, forged));
    const other = await s.x25519Key(new Uint8Array(32));
    await refuses("a result opened by another account", () => s.openResult(other, bytes(v.result), v.output_hash));
    await refuses("a truncated bundle", () => s.unpack(bytes(v.packed).subarray(0, 50)));
    await refuses("a bundle with trailing bytes", () => s.unpack(s.concat(bytes(v.packed), new Uint8Array(1))));
    await refuses("a bundle path with ..", () => s.pack(v.manifest, [["../x", new Uint8Array()]]));
    const enc = new TextEncoder();
    return {
      failures, checked,
      sealed_by_page: hex(await s.seal(bytes(v.provider_x25519), enc.encode("content key from the page"))),
      encrypted_by_page: hex(s.encrypt(contentKey, enc.encode("sealed in chromium"))),
    };
  }, vectors);
  if (answer.failures.length) throw new Error(`failed: ${answer.failures.join("; ")}`);
  console.log(JSON.stringify(answer));
} finally {
  await browser.close();
}

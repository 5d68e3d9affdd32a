// Drives Debian's chromium (playwright-core, no browser download) over the web DApp of a running
// node: market overview, a provider page whose chain data tries to inject script, a wallet that
// imports a key file and signs a transfer in the browser, the explorer. Screenshots go to the
// artifacts folder. crates/node/tests/browser.rs starts the node and checks the ledger after.
// Usage: node browser.mjs URL ARTIFACTS KEY_FILE PAYEE NODE_ID HOSTILE_TEXT
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [url, artifacts, keyFile, payee, nodeId, hostile] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const fail = (why) => { throw new Error(why); };
const browser = await chromium.launch({
  executablePath: process.env.AICPW_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`); });
  page.on("dialog", (d) => { problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  page.on("request", (r) => { if (!r.url().startsWith(url)) problems.push(`request off the node: ${r.url()}`); });
  const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
  const text = async (selector) => (await page.locator(selector).first().textContent()).trim();

  // Market: the overview counts the registered node.
  await page.goto(`${url}/#/`);
  await page.waitForSelector('[data-metric="nodes-online"]');
  const nodes = await text('[data-metric="nodes-online"]');
  if (!/^\d+ \/ 1$/.test(nodes)) fail(`market shows nodes ${nodes}`);
  await shot("market");

  // Provider page: the node's endpoint and GPU name are hostile markup; shown as text, run never.
  await page.goto(`${url}/#/node/${nodeId}`);
  await page.waitForSelector("[data-endpoint]");
  if ((await text("[data-endpoint]")) !== hostile) fail("the endpoint is not shown verbatim");
  if (await page.locator("main img, main script").count()) fail("chain data became markup");
  if (await page.evaluate(() => window.pwned !== undefined)) fail("chain data ran script");
  await shot("provider");

  // Wallet: a key file that is not one is refused with a message.
  await page.goto(`${url}/#/wallet`);
  await page.setInputFiles("#keyfile", { name: "bad.json", mimeType: "application/json", buffer: Buffer.from('{"secret_key":"zz"}') });
  await page.waitForSelector("#wallet-status.error");
  // The real key file: the page derives the address and signs a transfer with WebCrypto.
  await page.setInputFiles("#keyfile", keyFile);
  await page.waitForSelector("#address");
  const address = await text("#address");
  await page.fill("#to", payee);
  await page.fill("#amount", "1.5");
  await page.click("#transfer button[type=submit]");
  await page.waitForSelector("#wallet-status.ok", { timeout: 20000 });
  const status = await text("#wallet-status");
  if (!/^committed in block \d+$/.test(status)) fail(`wallet says ${status}`);
  await shot("wallet");

  // Explorer: search the payee's address.
  // Wait for the explorer itself (the wallet page has a table too): a search typed while the
  // explorer still loads is overwritten when it arrives.
  await page.goto(`${url}/#/explorer`);
  await page.waitForSelector("main h1:has-text('Explorer')");
  await page.waitForSelector("main table");
  await page.fill("#q", payee);
  await page.press("#q", "Enter");
  await page.waitForSelector(`[data-address="${payee}"]`);
  const balance = await text('[data-metric="balance"]');
  await shot("explorer-account");

  if (problems.length) fail(problems.join("\n"));
  console.log(JSON.stringify({ address, status, payee_balance: balance }));
} finally {
  await browser.close();
}

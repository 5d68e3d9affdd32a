// The requester's and the provider's flow in chromium (playwright-core, Debian's chromium) over a
// real node and provider agents that crates/cli/tests/browser.rs started: import a key file,
// see the provider's earnings, submit a task file with an input chosen in the page (sealed,
// uploaded with a progress bar, signed), watch it run while the page grants the content key,
// download and decrypt the result, accept it, rate it, and see the provider's earnings move.
// The downloaded output goes to ARTIFACTS/download/ for the Rust test to compare with
// `aicpw task result`; screenshots to ARTIFACTS/.
// Usage: node requester.mjs URL ARTIFACTS KEY_FILE NODE_ID TASK_FILE INPUT_FILE
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";

const [url, artifacts, keyFile, nodeId, taskFile, inputFile] = process.argv.slice(2);
mkdirSync(`${artifacts}/download`, { recursive: true });
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
  page.on("request", (r) => { if (!r.url().startsWith(url) && !r.url().startsWith("blob:")) problems.push(`request off the node: ${r.url()}`); });
  const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
  const text = async (selector) => (await page.locator(selector).first().textContent()).trim();
  const step = async (what, run) => { try { return await run(); } catch (e) { await shot(`failed-${what}`).catch(() => {}); throw new Error(`${what}: ${e.message}\n${problems.join("\n")}`); } };

  await step("import the key", async () => {
    await page.goto(`${url}/#/wallet`);
    await page.setInputFiles("#keyfile", keyFile);
    await page.waitForSelector("#address");
  });
  const earnedBefore = await step("provider before", async () => {
    await page.goto(`${url}/#/node/${nodeId}`);
    await page.waitForSelector('[data-metric="earned"]');
    return text('[data-metric="earned"]');
  });

  // Submit: the task file loaded from disk, its input chosen, sealed and uploaded in the page.
  const id = await step("submit", async () => {
    await page.goto(`${url}/#/submit`);
    await page.waitForSelector("#task-yaml");
    await page.setInputFiles("#task-file", taskFile);
    await page.waitForFunction((yaml) => document.querySelector("#task-yaml").value === yaml, readFileSync(taskFile, "utf8"));
    await page.setInputFiles("#inputs", inputFile);
    await page.click("#submit button[type=submit]");
    await page.waitForSelector("#submit-status.ok", { timeout: 30000 });
    const bar = await page.evaluate(() => { const b = document.querySelector("#upload-progress"); return { value: b.value, max: b.max }; });
    if (!(bar.max > 1 && bar.value === bar.max)) fail(`the upload bar shows ${JSON.stringify(bar)}`);
    await shot("submitted");
    const id = (await text("#submit-status")).replace(/^submitted task /, "");
    await page.click("#open-task");
    await page.waitForSelector("[data-task-state]");
    return { id, bar };
  });

  await step("run", async () => {
    await page.waitForSelector("#task-status.ok", { timeout: 30000 }); // the content key granted by the page
    await page.waitForFunction(() => ["verifying", "completed"].includes(document.querySelector("[data-task-state]").textContent), null, { timeout: 90000 });
    await page.waitForFunction(() => document.querySelector("#task-progress").value === 1000);
  });
  const granted = await text("#task-status");

  await step("decrypt", async () => {
    await page.click("#decrypt", { timeout: 10000 });
    await page.waitForSelector("#result-status.ok", { timeout: 30000 });
    const download = page.waitForEvent("download");
    await page.click('[data-output="model.txt"]');
    await (await download).saveAs(`${artifacts}/download/model.txt`);
    await page.waitForSelector("svg.chart");
  });
  const log = await text("#task-log");
  await shot("task-result");

  await step("accept", async () => {
    await page.click("#accept");
    await page.waitForFunction(() => document.querySelector("[data-task-state]").textContent === "completed", null, { timeout: 20000 });
  });
  await step("rate", async () => {
    await page.waitForSelector("#rate");
    await page.selectOption("#stars", "4");
    await page.click("#rate button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#task-status").textContent === "rated 4 stars", null, { timeout: 20000 });
  });
  await shot("task-completed");

  const earnedAfter = await step("provider after", async () => {
    await page.goto(`${url}/#/node/${nodeId}`);
    await page.waitForSelector('[data-metric="earned"]');
    return text('[data-metric="earned"]');
  });
  await shot("provider-earned");

  if (problems.length) fail(problems.join("\n"));
  console.log(JSON.stringify({ task: Number(id.id), uploaded_bytes: id.bar.max, earned_before: earnedBefore, earned_after: earnedAfter, granted, log }));
} finally {
  await browser.close();
}

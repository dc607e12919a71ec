// page.mjs FACEVER CHROMIUM OUTDIR - the page in a real browser.
//
// Starts `FACEVER serve --port 0` (the port read from its "listening on" line, as
// tests/server_harness.c does), opens / in CHROMIUM headless through puppeteer-core
// (installed into $FV_BROWSER_NODE/node_modules by scripts/npm-pinned.sh), chooses
// tests/data/sample1.jpg and a 12 MP phone copy of it through the file inputs, and checks
// that the score shown is the API's for the same request, that faces were drawn and
// their crops shown, that the threshold slider re-decides without asking the server,
// that a photo without a face shows a readable error, and that nothing broke the
// Content-Security-Policy. Screenshots go to OUTDIR. Exit 0 only when every check held.
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { deflateSync } from "node:zlib";

const [facever, chromium, outDir] = process.argv.slice(2);
if (!facever || !chromium || !outDir) {
  console.error("usage: node tests/browser/page.mjs FACEVER CHROMIUM OUTDIR");
  process.exit(2);
}
const modules = path.resolve(process.env.FV_BROWSER_NODE || "build/browser", "node_modules");
const require = createRequire(modules + path.sep);
const puppeteer = require("puppeteer-core");

const photo1 = "tests/data/sample1.jpg";
const photo2 = "tests/data/phone/sample1-4032x3024-o6.jpg";
const started = Date.now();
const failures = [];
function check(ok, what) {
  console.log(`browser-test: ${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}

// A plain grey PNG: no face in it. CRC-32 as PNG defines it (ISO 3309).
function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}
function plainPng(width, height, rgb) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set(rgb, 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function startServer(extra = []) {
  return new Promise((resolve, reject) => {
    const args = ["serve", "--port", "0", "--threads", "2", "--drain-seconds", "0", ...extra];
    const child = spawn(facever, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, OPENBLAS_NUM_THREADS: "1" },
    });
    let log = "";
    const timer = setTimeout(() => reject(new Error(`no "listening on" line in 60 s:\n${log}`)), 60000);
    child.stderr.on("data", (d) => {
      log += d;
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on("exit", (code) => reject(new Error(`facever exited (${code}) before listening:\n${log}`)));
  });
}

async function apiVerify(base, a, b, fields = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append("image1", new Blob([readFileSync(a)]), path.basename(a));
  form.append("image2", new Blob([readFileSync(b)]), path.basename(b));
  const res = await fetch(`${base}/v1/verify`, { method: "POST", body: form });
  return { status: res.status, body: await res.json() };
}

mkdirSync(outDir, { recursive: true });
const blankPath = path.join(outDir, "plain-grey.png");
writeFileSync(blankPath, plainPng(320, 240, [128, 128, 128]));

// A data root for an evaluation: six people, each a sample photo and its 12 MP phone
// copy, in two folds of same and different pairs.
const dataRoot = path.resolve(outDir, "data-root");
rmSync(dataRoot, { recursive: true, force: true });
for (let k = 1; k <= 6; k++) {
  mkdirSync(path.join(dataRoot, "imgs", `P${k}`), { recursive: true });
  copyFileSync(`tests/data/sample${k}.jpg`, path.join(dataRoot, "imgs", `P${k}`, `P${k}_0001.jpg`));
  copyFileSync(`tests/data/phone/sample${k}-4032.jpg`, path.join(dataRoot, "imgs", `P${k}`, `P${k}_0002.jpg`));
}
writeFileSync(path.join(dataRoot, "pairs.txt"), [
  "FOLDS 2",
  "P1 1 2", "P2 1 2", "P3 1 2", "P1 1 P2 1", "P3 1 P4 1", "P5 1 P6 1",
  "P4 1 2", "P5 1 2", "P6 1 2", "P1 1 P4 1", "P2 1 P5 1", "P3 1 P6 1",
].join("\n") + "\n");

let server, keyed, browser;
const consoleErrors = [];
try {
  server = await startServer(["--data-root", dataRoot]);
  const base = `http://127.0.0.1:${server.port}`;
  console.log(`browser-test: facever on ${base}`);
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // --no-sandbox: the test may run as root (CI containers), where chromium refuses its sandbox.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1000 });
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  // Violations are also reported as events; a listener added before the page's own
  // script (through the DevTools protocol, which the policy does not govern) records them.
  await page.evaluateOnNewDocument(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  let verifyCalls = 0;
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/verify")) verifyCalls++;
  });

  const resp = await page.goto(`${base}/`, { waitUntil: "networkidle0" });
  check(resp.status() === 200, "GET / is 200");
  check((resp.headers()["content-security-policy"] || "").includes("default-src 'none'"),
    "GET / carries the Content-Security-Policy");
  check(await page.$eval("#key-box", (e) => e.hidden && getComputedStyle(e).display === "none"),
    "no key asked for when the server has none");

  await (await page.$("#file-1")).uploadFile(photo1);
  await (await page.$("#file-2")).uploadFile(photo2);
  await page.waitForFunction(() => !document.querySelector("#result").hidden &&
    document.querySelector("#score").textContent !== "", { timeout: 60000 });
  const shown = await page.$eval("#score", (e) => e.textContent);
  const api = await apiVerify(base, photo1, photo2);
  check(api.status === 200 && api.body.match === true, `the API says ${photo2} matches ${photo1}`);
  check(shown === String(api.body.score), `the page shows the API's score (${shown} vs ${api.body.score})`);
  const decision = await page.$eval("#decision", (e) => e.dataset.match);
  check(decision === "true", "the page says: same person");
  const slider = await page.$eval("#threshold", (e) => Number(e.value));
  check(Math.abs(slider - api.body.threshold) < 1e-9, `the slider starts at the answer's threshold (${slider})`);

  const drawn = await page.$$eval(".side canvas", (canvases) => canvases.map((c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) n += d[i] !== 0;
    return n;
  }));
  check(drawn.length === 2 && drawn.every((n) => n > 100), `boxes and landmarks drawn on both photos (${drawn} pixels)`);
  const crops = await page.$$eval(".side", (sides) => sides.map((s) =>
    [...s.querySelectorAll(".crop img")].filter((i) => i.complete && i.naturalWidth > 0).length));
  check(crops[0] >= 2 && crops[1] >= 1, `aligned crops shown (${crops})`);
  const cropSize = await page.$eval(".crop img", (i) => `${i.naturalWidth}x${i.naturalHeight}`);
  check(cropSize === "112x112", `crops at the model's input size (${cropSize})`);
  await page.screenshot({ path: path.join(outDir, "match.png"), fullPage: true });

  // The slider re-decides in the page: no new request.
  const before = verifyCalls;
  await page.$eval("#threshold", (e) => {
    e.value = "1";
    e.dispatchEvent(new Event("input", { bubbles: true }));
  });
  const after = await page.$eval("#decision", (e) => e.dataset.match);
  check(after === "false" && verifyCalls === before, "threshold 1 re-decides to no match without a request");

  // Choosing another face of photo 1 asks again with face1: the API's score for that face.
  const picked = await page.$eval("#side-1 .crop:not(.chosen)", (b) => {
    const index = [...b.parentNode.children].indexOf(b);
    b.click();
    return index;
  });
  await page.waitForFunction((old) => document.querySelector("#score").textContent !== old,
    { timeout: 30000 }, shown);
  const other = await page.$eval("#score", (e) => e.textContent);
  const apiOther = await apiVerify(base, photo1, photo2, { face1: String(picked) });
  check(verifyCalls === before + 1 && other === String(apiOther.body.score),
    `face ${picked} of photo 1 chosen: the API's score for it (${other} vs ${apiOther.body.score})`);

  // The embeddings button: one POST /v1/embed of both photos, offered as a download.
  const client = await page.createCDPSession();
  await client.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: path.resolve(outDir) })
    .catch(() => {});
  const download = path.join(outDir, "embeddings.json");
  rmSync(download, { force: true });
  const [embedResp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/embed"), { timeout: 30000 }),
    page.click("#embed"),
  ]);
  const embedded = await embedResp.json();
  check(embedResp.status() === 200 && embedded.results && embedded.results.length === 2 &&
    embedded.results.every((r) => r.faces && r.faces.length > 0),
    "the embeddings button posts both photos to /v1/embed");
  for (let i = 0; i < 50 && !existsSync(download); i++) await new Promise((r) => setTimeout(r, 100));
  let saved = null;
  try { saved = JSON.parse(readFileSync(download, "utf8")); } catch (e) { saved = null; }
  check(saved && saved.results && saved.results.length === 2, `the answer is downloaded as ${download}`);

  // A photo without a face: a readable message, no result.
  await (await page.$("#file-2")).uploadFile(blankPath);
  await page.waitForFunction(() => /No face/.test(document.querySelector("#side-2 .message").textContent),
    { timeout: 30000 });
  const message = await page.$eval("#side-2 .message", (e) => e.textContent);
  check(message === "No face found in photo 2.", `no face: "${message}"`);
  check(await page.$eval("#result", (e) => e.hidden), "no result shown for a photo without a face");
  await page.screenshot({ path: path.join(outDir, "no-face-shown.png"), fullPage: true });

  // An evaluation: started from the page, polled, its ROC and table shown.
  const evalStart = Date.now();
  await page.type("#eval-images", "imgs");
  await page.type("#eval-pairs", "pairs.txt");
  await page.$eval("#eval-pca", (e) => { e.value = "0"; });
  await page.click("#eval-start");
  await page.waitForFunction(() => !document.querySelector("#eval-report").hidden ||
    document.querySelector("#eval-error").textContent !== "", { timeout: 120000 });
  const evalError = await page.$eval("#eval-error", (e) => e.textContent);
  check(evalError === "", `the evaluation finished without an error (${evalError})`);
  await page.waitForFunction(() => document.querySelector("#eval-roc").naturalWidth > 0, { timeout: 20000 });
  const rocSrc = await page.$eval("#eval-roc", (e) => e.src);
  check(rocSrc.startsWith("blob:"), "the ROC curve is shown");
  const rows = await page.$$eval("#eval-rows tr", (trs) => trs.map((tr) =>
    [...tr.children].map((td) => td.textContent)));
  check(rows.length >= 1 && rows.every((r) => r.length === 6 && /%/.test(r[2])),
    `the report's table is shown (${JSON.stringify(rows)})`);
  const progress = await page.$eval("#eval-status", (e) => e.textContent);
  check(/^done: 12 of 12 images/.test(progress), `progress shown (${progress})`);
  console.log(`browser-test: the evaluation took ${((Date.now() - evalStart) / 1000).toFixed(1)} s`);
  await page.screenshot({ path: path.join(outDir, "evaluation.png"), fullPage: true });

  const violations = await page.evaluate(() => window.cspViolations);
  check(violations.length === 0, `no Content-Security-Policy violations (${violations.join("; ")})`);
  // The 422 of the photo without a face is logged by chromium as a failed load; nothing else may be.
  const unexpected = consoleErrors.filter((t) => !/status of 422/.test(t));
  check(unexpected.length === 0, `no console errors (${unexpected.join(" | ")})`);

  // With --api-keys: the page asks for a key, sends it, and stores it nowhere.
  const keysPath = path.join(outDir, "api-keys.txt");
  writeFileSync(keysPath, "browser-test-key\n");
  keyed = await startServer(["--api-keys", keysPath]);
  const keyedBase = `http://127.0.0.1:${keyed.port}`;
  const page2 = await browser.newPage();
  page2.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  await page2.goto(`${keyedBase}/`, { waitUntil: "networkidle0" });
  await page2.waitForFunction(() => !document.querySelector("#key-box").hidden, { timeout: 10000 });
  check(true, "the page asks for a key when the server has keys");
  await (await page2.$("#file-1")).uploadFile(photo1);
  await page2.waitForFunction(() => /API key/.test(document.querySelector("#side-1 .message").textContent),
    { timeout: 30000 });
  check(true, "a call without the key says a key is needed");
  await page2.type("#api-key", "browser-test-key");
  await page2.click("#key-use");
  await page2.waitForFunction(() => document.querySelectorAll("#side-1 .crop img").length > 0,
    { timeout: 30000 });
  check(true, "with the key typed, the photo is analysed");
  const stored = await page2.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  const cookies = await page2.cookies();
  check(stored[0] === 0 && stored[1] === 0 && stored[2] === "" && cookies.length === 0,
    `the key is stored nowhere (storage ${stored}, ${cookies.length} cookies)`);
  await page2.screenshot({ path: path.join(outDir, "api-key.png"), fullPage: true });
} catch (e) {
  check(false, `the run: ${e.stack || e}`);
  if (consoleErrors.length) console.log(`browser-test: console errors so far: ${consoleErrors.join(" | ")}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.child.kill("SIGTERM");
  if (keyed) keyed.child.kill("SIGTERM");
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`browser-test: ${failures.length ? `${failures.length} FAILED` : "passed"} in ${seconds} s; screenshots in ${outDir}/`);
process.exit(failures.length ? 1 : 0);

// Shared helpers of the browser scenarios (web/e2e/*.scenario.mjs).
//
// gateway/tests/web_client.rs starts a pool as deployed (a worker, gateway
// processes gw1 and gw2, HAProxy with the shipped haproxy.cfg) and runs
// run.mjs against it with:
//
//   FECHATTER_URL        https://127.0.0.1:<port>, HAProxy's TLS listener
//   FECHATTER_GATEWAYS   {"gw1": <pid>, "gw2": <pid>}: what killGateway() may kill
//   FECHATTER_ARTIFACTS  where a failed scenario's screenshots, console logs and
//                        traces go (default: web/test-results/)
//   CHROMIUM_PATH        the browser (default: /usr/bin/chromium, Debian's package)
//
// Everything that fails says what it waited for and what it saw, because a
// browser test failing in CI is read from its output and artifacts only.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;

/** The run's settings, from the environment. */
export const env = readEnv();

function readEnv() {
  const url = process.env.FECHATTER_URL;
  if (!url) throw new Error("FECHATTER_URL is not set (the pool to test, e.g. https://127.0.0.1:8443)");
  let gateways;
  try {
    gateways = JSON.parse(process.env.FECHATTER_GATEWAYS || "{}");
  } catch (e) {
    throw new Error(`FECHATTER_GATEWAYS is not JSON ({"gw1": pid, ...}): ${e.message}`);
  }
  return {
    url: url.replace(/\/$/, ""),
    gateways,
    artifacts: process.env.FECHATTER_ARTIFACTS || join(here, "../test-results"),
    chromium: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  };
}

/**
 * Headless Chromium. No sandbox: it needs user namespaces, absent as root in
 * CI; no /dev/shm: containers often give it 64 MB, too little for Chromium.
 */
export function launch() {
  return chromium.launch({ executablePath: env.chromium, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** Users (browser contexts) opened by the running scenario. */
const open = [];

/**
 * A new user: its own browser context (cookies, storage) and one page.
 * `user.console` holds every console line, `user.errors` console errors and
 * uncaught page errors, `user.instance()` the gateway of the page's newest
 * WebSocket (from its `session.ready` frame), or undefined before one.
 */
export async function newUser(browser, name = `user${open.length + 1}`) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.tracing.start({ snapshots: true, screenshots: false });
  const page = await context.newPage();
  const user = { name, context, page, console: [], errors: [], instances: [] };
  user.instance = () => user.instances.at(-1);
  page.on("console", (m) => {
    const where = m.location().url;
    const line = `[${m.type()}] ${m.text()}${where ? ` (${where})` : ""}`;
    user.console.push(line);
    if (m.type() === "error") user.errors.push(line);
  });
  page.on("pageerror", (e) => {
    user.console.push(`[pageerror] ${e.stack || e.message}`);
    user.errors.push(`[pageerror] ${e.message}`);
  });
  page.on("websocket", (ws) => ws.on("framereceived", (f) => noteInstance(user, f.payload)));
  open.push(user);
  return user;
}

function noteInstance(user, payload) {
  if (typeof payload !== "string" || !payload.includes('"session.ready"')) return;
  try {
    const frame = JSON.parse(payload);
    if (frame.type === "session.ready") user.instances.push(frame.payload.instance);
  } catch {
    // Not JSON: not a frame of ours.
  }
}

/** Fails when `user`'s page logged console errors or threw. */
export function assertNoConsoleErrors(user) {
  if (user.errors.length) {
    throw new Error(`${user.name}'s page logged errors:\n  ${user.errors.join("\n  ")}`);
  }
}

/** SIGKILL to gateway `instance` (a key of FECHATTER_GATEWAYS); returns its pid. */
export function killGateway(instance) {
  const pid = env.gateways[instance];
  if (!pid) {
    throw new Error(`no gateway "${instance}" in FECHATTER_GATEWAYS (${JSON.stringify(env.gateways)})`);
  }
  process.kill(pid, "SIGKILL");
  return pid;
}

/**
 * Polls `probe` until it returns something truthy (returned) or throws
 * after `timeout` ms, naming `what` and the last value or error seen.
 */
export async function waitFor(what, probe, { timeout = 10_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = `last value: ${JSON.stringify(value)}`;
    } catch (e) {
      last = `last error: ${e.message}`;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Waits until `text` is visible on `user`'s page. */
export async function waitForText(user, text, { timeout = 10_000 } = {}) {
  try {
    await user.page.getByText(text).first().waitFor({ state: "visible", timeout });
  } catch {
    const body = (await user.page.locator("body").innerText().catch(() => "")).slice(0, 500);
    throw new Error(`timed out after ${timeout} ms waiting for "${text}" on ${user.name}'s page; it shows: ${body}`);
  }
}

/** Waits until `user`'s page has a WebSocket session on a gateway; returns its name. */
export function waitForGateway(user, opts) {
  return waitFor(`${user.name}'s session.ready`, () => user.instance(), opts);
}

/**
 * Runs `fn` as scenario `name`. On failure it saves every open page's
 * full-page screenshot, console log and trace into
 * FECHATTER_ARTIFACTS/<name>/ (emptied first) and rethrows; either way it
 * closes the users the scenario opened.
 */
export async function scenario(name, fn) {
  open.length = 0;
  rmSync(join(env.artifacts, name), { recursive: true, force: true }); // an earlier run's
  try {
    await fn();
  } catch (e) {
    await saveArtifacts(name).catch((err) => console.error(`saving artifacts of ${name} failed: ${err.message}`));
    throw e;
  } finally {
    for (const user of open.splice(0)) await user.context.close().catch(() => {});
  }
}

async function saveArtifacts(name) {
  const dir = join(env.artifacts, name);
  mkdirSync(dir, { recursive: true });
  for (const user of open) {
    for (const [i, page] of user.context.pages().entries()) {
      const file = join(dir, `${user.name}${i ? `-${i}` : ""}.png`);
      await page.screenshot({ path: file, fullPage: true, timeout: 10_000 }).catch((e) => {
        writeFileSync(`${file}.error.txt`, `screenshot failed: ${e.message}\n`);
      });
    }
    writeFileSync(join(dir, `${user.name}-console.log`), user.console.join("\n") + "\n");
    await user.context.tracing.stop({ path: join(dir, `${user.name}-trace.zip`) }).catch(() => {});
  }
  console.error(`  artifacts of ${name}: ${dir}`);
}

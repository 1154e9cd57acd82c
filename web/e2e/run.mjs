// Runs the browser scenarios: every web/e2e/*.scenario.mjs, in name order
// (NN- prefixes order them), one after another in one shared Chromium.
// Each exports `default async function (ctx)`; ctx is
// { browser, env, newUser(name?), killGateway(instance) } (harness.mjs has
// the rest). Prints PASS/FAIL with timings, exits 1 when any failed.
//
// Started by gateway/tests/web_client.rs against a pool it owns; by hand:
//   FECHATTER_URL=https://127.0.0.1:8443 npm run e2e   (against `make run`)
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { env, killGateway, launch, newUser, scenario } from "./harness.mjs";

/** The whole run, browser start included: ends a hung run with a message. */
const RUN_TIMEOUT_MS = 7 * 60 * 1000;

const here = new URL(".", import.meta.url).pathname;
const files = readdirSync(here)
  .filter((f) => f.endsWith(".scenario.mjs"))
  .sort();

const timer = setTimeout(() => {
  console.error(`FAIL: the scenarios did not finish within ${RUN_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, RUN_TIMEOUT_MS);
timer.unref();

async function runAll(browser) {
  const ctx = { browser, env, newUser: (name) => newUser(browser, name), killGateway };
  let failed = 0;
  for (const file of files) {
    const name = file.replace(/\.scenario\.mjs$/, "");
    const started = Date.now();
    try {
      const { default: run } = await import(pathToFileURL(join(here, file)).href);
      if (typeof run !== "function") throw new Error(`${file} has no default export function`);
      await scenario(name, () => run(ctx));
      console.log(`PASS ${name} (${seconds(started)})`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name} (${seconds(started)})`);
      console.error(`  ${e.stack || e}`.replace(/\n/g, "\n  "));
    }
  }
  return failed;
}

function seconds(since) {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

if (files.length === 0) {
  console.error(`FAIL: no *.scenario.mjs in ${here}`);
  process.exit(1);
}
console.log(`${files.length} scenarios against ${env.url} (Chromium: ${env.chromium})`);
const browser = await launch();
let failed;
try {
  failed = await runAll(browser);
} finally {
  await browser.close();
}
console.log(failed ? `${failed} of ${files.length} scenarios failed` : `all ${files.length} scenarios passed`);
process.exit(failed ? 1 : 0);

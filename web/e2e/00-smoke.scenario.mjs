// The app is served through HAProxy over https: the page, its script and
// its stylesheet load with the right status and content types, and the page
// starts without console errors. Everything else builds on this.
import { readFileSync } from "node:fs";
import { assertNoConsoleErrors, waitFor } from "./harness.mjs";

const indexHtml = readFileSync(new URL("../static/index.html", import.meta.url), "utf8");
const expectedTitle = indexHtml.match(/<title>([^<]*)<\/title>/)[1];

const ASSETS = {
  "/app.js": /^(text|application)\/javascript\b/,
  "/app.css": /^text\/css\b/,
};

export default async function smoke({ newUser, env }) {
  const user = await newUser("visitor");
  const responses = new Map();
  user.page.on("response", (r) => responses.set(new URL(r.url()).pathname, r));

  const doc = await user.page.goto(`${env.url}/`, { waitUntil: "load" });
  if (!doc) throw new Error(`no response for ${env.url}/`);
  if (!doc.url().startsWith("https://")) throw new Error(`the page is not served over https: ${doc.url()}`);
  expectResponse(doc, 200, /^text\/html\b/);
  const title = await user.page.title();
  if (title !== expectedTitle) throw new Error(`title is "${title}", web/static/index.html says "${expectedTitle}"`);

  for (const [path, type] of Object.entries(ASSETS)) {
    const r = await waitFor(`the response to ${path}`, () => responses.get(path), { timeout: 5000 });
    expectResponse(r, 200, type);
  }
  // Errors of the app's start (a failed request, an exception) come after load.
  await user.page.waitForLoadState("networkidle");
  assertNoConsoleErrors(user);
}

function expectResponse(r, status, type) {
  const got = r.headers()["content-type"] || "";
  if (r.status() !== status || !type.test(got)) {
    throw new Error(`${r.url()}: ${r.status()} ${got}, expected ${status} matching ${type}`);
  }
}

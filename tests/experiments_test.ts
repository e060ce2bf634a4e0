/**
 * The experiments layer: config layering and its errors, a run directory written end to end
 * (in process with a tiny experiment, and through `deno task exp llama3-long --quick
 * --device meta`), `deno task report` re-rendering, well-formed SVG, a self-contained HTML
 * report, and a failed run never marked complete.
 */

import assert from "node:assert/strict";
import { configToYaml, resolveExperimentConfig } from "../lib/experiments/config.ts";
import { defineExperiment } from "../lib/experiments/define.ts";
import { runExperiment, utcStamp } from "../lib/experiments/run.ts";
import { downsampleTimeline } from "../lib/experiments/timeline.ts";
import { chartBundle, display, VEGA_LITE_MIME } from "../lib/report/jupyter.ts";
import { readRunRecords } from "../lib/report/records.ts";
import { renderSvg } from "../lib/report/render_svg.ts";
import { rerenderReport } from "../lib/report/write_report.ts";
import type { MemoryEvent } from "../lib/device/allocator.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function task(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Throws unless `xml` is well-formed: balanced tags, quoted attributes, escaped text. */
function assertWellFormedXml(xml: string, what: string): void {
  const body = xml.replace(/^\s*<\?xml[^>]*\?>/, "").replace(/<!--[\s\S]*?-->/g, "");
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*"[^"]*")*)\s*(\/?)>/y;
  let i = 0;
  let roots = 0;
  while (i < body.length) {
    const lt = body.indexOf("<", i);
    const text = body.slice(i, lt < 0 ? body.length : lt);
    const badAmp = text.match(/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/);
    assert.equal(
      badAmp,
      null,
      `${what}: unescaped & in text near ${JSON.stringify(text.slice(0, 40))}`,
    );
    if (stack.length === 0) assert.equal(text.trim(), "", `${what}: text outside the root element`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    assert.ok(m, `${what}: malformed tag at ${lt}: ${JSON.stringify(body.slice(lt, lt + 60))}`);
    const [whole, close, name, , selfClose] = m;
    if (close) {
      assert.equal(stack.pop(), name, `${what}: </${name}> closes the wrong element`);
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
    i = lt + whole.length;
  }
  assert.deepEqual(stack, [], `${what}: unclosed elements`);
  assert.equal(roots, 1, `${what}: expected one root element`);
}

/** No http(s) URL in any src/href attribute, and no scripts. */
function assertSelfContained(html: string): void {
  const refs = [...html.matchAll(/\b(?:src|href|xlink:href)\s*=\s*["']?\s*(https?:)?\/\//gi)];
  assert.deepEqual(refs.map((m) => m[0]), [], "report.html refers to the network");
  assert.ok(!/<script\b/i.test(html), "report.html has a script");
  assert.ok(!/<link\b/i.test(html), "report.html links an external resource");
}

const defaults = {
  seqs: [256, 512],
  steps: 3,
  lr: 0.003,
  data: "brown",
  verbose: false,
  tags: ["a"],
};

Deno.test("config: defaults ← quick ← YAML ← --set, typed like the defaults", () => {
  const c = resolveExperimentConfig(defaults, {
    quick: { steps: 1, seqs: [128] },
    yaml: "steps: 2\ndata: repeat\ntags: [x, 3]\n",
    set: ["seqs=64,96", "lr=1e-3", "verbose=true"],
  });
  assert.deepEqual(c, {
    seqs: [64, 96],
    steps: 2,
    lr: 1e-3,
    data: "repeat",
    verbose: true,
    tags: ["x", "3"],
  });
  assert.deepEqual(resolveExperimentConfig(defaults, { set: ["seqs=[1, 2]"] }).seqs, [1, 2]);
  assert.deepEqual(resolveExperimentConfig(defaults, { yaml: "" }), defaults);
  // the written config.yaml reads back as the same config
  const yaml = configToYaml(c, "a header");
  assert.deepEqual(resolveExperimentConfig(defaults, { yaml }), c);
});

Deno.test("config: unknown keys list the valid ones; wrong types name key and type", () => {
  assert.throws(
    () => resolveExperimentConfig(defaults, { set: ["stepz=3"] }),
    (e: Error) =>
      /--set stepz=3: unknown key "stepz"/.test(e.message) && /valid keys:/.test(e.message) &&
      /seqs: number\[\] \(default \[256,512\]\)/.test(e.message) && /steps: number/.test(e.message),
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { yaml: "nope: 1", yamlSource: "f.yaml" }),
    /f\.yaml: unknown key "nope"/,
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { set: ["steps=many"] }),
    /"steps" must be number, got "many"/,
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { set: ["seqs=1,x"] }),
    /"seqs" must be number\[\]/,
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { set: ["verbose=yes"] }),
    /"verbose" must be boolean/,
  );
  assert.throws(() => resolveExperimentConfig(defaults, { set: ["steps"] }), /expected key=value/);
  assert.throws(
    () => resolveExperimentConfig(defaults, { yaml: "steps: [1]" }),
    /"steps" must be number, got \[1\]/,
  );
  assert.throws(
    () => resolveExperimentConfig(defaults, { yaml: "- 1\n- 2" }),
    /expected a mapping/,
  );
  assert.throws(() => resolveExperimentConfig(defaults, { yaml: "a: [" }), /not valid YAML/);
});

Deno.test("defineExperiment rejects bad names and untyped defaults", () => {
  const run = () => {};
  assert.throws(
    () => defineExperiment({ name: "Bad Name", description: "", defaults: {}, run }),
    /experiment name/,
  );
  assert.throws(
    () => defineExperiment({ name: "x", description: "", defaults: { a: [] as number[] }, run }),
    /default "a" = \[\] is not/,
  );
});

const tiny = defineExperiment({
  name: "tiny-test",
  description: "a test experiment: n² on the meta device",
  defaults: { n: 4, label: "sq" },
  quick: { n: 3 },
  async run(ctx) {
    const dev = await ctx.device();
    assert.equal(dev.kind, "meta");
    const rows = await ctx.sweep(
      "n",
      Array.from({ length: ctx.config.n }, (_, i) => i + 1),
      (n) => {
        const row = { kind: "square", n, value: n * n };
        ctx.record(row);
        return row;
      },
    );
    ctx.record({ kind: "other", note: 'a <b> & "c"' });
    ctx.chart("squares", {
      title: `${ctx.config.label} <n²> & more`,
      data: { values: rows },
      mark: "line",
      encoding: {
        x: { field: "n", type: "quantitative" },
        y: { field: "value", type: "quantitative" },
      },
    });
    ctx.table({
      title: "paper vs ours",
      columns: ["claim", "paper", "ours"],
      rows: [["n²", 9, rows.at(-1)!.value]],
    });
    ctx.note('a note with <html> & "quotes"');
    ctx.summary({ last: rows.at(-1)!.value, nested: { quick: ctx.quick } });
    ctx.log("done");
  },
});

Deno.test("a run writes every file; the report re-renders from the records", async () => {
  const out = await Deno.makeTempDir({ prefix: "exp-test-" });
  try {
    const lines: string[] = [];
    const { dir, summary } = await runExperiment(tiny, {
      quick: true,
      device: "meta",
      set: ["label=squares"],
      out,
      print: (l) => lines.push(l),
    });
    assert.equal(dir, out);
    assert.deepEqual(lines, ["done"]);
    for (
      const f of [
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "report.html",
        "report.md",
        "log.txt",
      ]
    ) {
      assert.ok((await Deno.stat(`${out}/${f}`)).isFile, f);
    }
    const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.ok(!names.some((n) => n.includes(".tmp-") || n.endsWith(".partial")), names.join(", "));
    assert.deepEqual(summary.figures, { last: 9, nested: { quick: true } });
    const rec = await readRunRecords(out);
    assert.deepEqual(rec.config, { n: 3, label: "squares" });
    assert.equal(rec.metrics.length, 4);
    assert.deepEqual(rec.charts.map((c) => c.name), ["squares"]);
    const svg = await Deno.readTextFile(`${out}/charts/squares.svg`);
    assertWellFormedXml(svg, "squares.svg");
    const html = await Deno.readTextFile(`${out}/report.html`);
    assertSelfContained(html);
    assert.match(html, /<svg[\s\S]*<\/svg>/);
    assert.match(html, /a note with &lt;html&gt; &amp; &quot;quotes&quot;/);
    const md = await Deno.readTextFile(`${out}/report.md`);
    assert.match(md, /!\[squares\]\(charts\/squares\.svg\)/);
    assert.match(md, /\| n² \| 9 \| 9 \|/);

    await Deno.remove(`${out}/report.html`);
    await Deno.remove(`${out}/charts/squares.svg`);
    await rerenderReport(out);
    assert.equal(await Deno.readTextFile(`${out}/report.html`), html);
    assert.equal(await Deno.readTextFile(`${out}/charts/squares.svg`), svg);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("a failing run leaves its records but no summary.json; report refuses it", async () => {
  const out = await Deno.makeTempDir({ prefix: "exp-fail-" });
  try {
    const failing = defineExperiment({
      name: "failing",
      description: "fails halfway",
      defaults: { n: 1 },
      run(ctx) {
        ctx.record({ kind: "x", n: 1 });
        throw new Error("boom");
      },
    });
    await assert.rejects(
      runExperiment(failing, { out, print: () => {} }),
      /experiment failing failed: boom[\s\S]*no summary\.json/,
    );
    const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.ok(!names.includes("summary.json"));
    assert.ok(names.includes("error.txt"));
    await assert.rejects(rerenderReport(out), /no summary\.json \(the run is incomplete/);
    await assert.rejects(
      runExperiment(tiny, { out, device: "meta", print: () => {} }),
      /exists and is not an empty directory/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("renderSvg gives well-formed SVG; Jupyter bundle has vega-lite and SVG", async () => {
  const spec = {
    data: { values: [{ a: "x & y", b: 1 }, { a: "<z>", b: 2 }] },
    mark: "bar",
    encoding: { x: { field: "a", type: "nominal" }, y: { field: "b", type: "quantitative" } },
  };
  const svg = await renderSvg(spec);
  assert.match(svg, /^<svg /);
  assertWellFormedXml(svg, "bar chart");
  const bundle = await chartBundle(spec);
  assert.equal(bundle["image/svg+xml"], svg);
  assert.equal((bundle[VEGA_LITE_MIME] as { mark: string }).mark, "bar");
  assert.deepEqual(await display(spec), bundle); // outside the kernel: returns the bundle only
  await assert.rejects(renderSvg({ mark: "nonsense" }, "bad"), /chart "bad"/);
});

Deno.test("timeline downsampling keeps the peak and the order", () => {
  const events: MemoryEvent[] = Array.from({ length: 1000 }, (_, i) => ({
    seq: i,
    kind: "alloc",
    id: i,
    bytes: 1,
    tag: "activations",
    name: "t",
    phase: i < 500 ? "forward" : "backward",
    liveBytes: i === 777 ? 10_000 : (i * 37) % 101,
  }));
  const pts = downsampleTimeline(events, 100);
  assert.ok(pts.length <= 100);
  assert.ok(pts.some((p) => p.index === 777 && p.liveBytes === 10_000));
  assert.ok(pts.every((p, i) => i === 0 || p.index > pts[i - 1].index));
  assert.equal(downsampleTimeline(events.slice(0, 50), 100).length, 50);
  assert.match(utcStamp(new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6))), /^2025-01-02T03-04-05Z$/);
});

Deno.test("deno task exp / report: llama3-long --quick on the meta device, errors, --list", async () => {
  const out = await Deno.makeTempDir({ prefix: "exp-cli-" });
  try {
    const [list, unknown, badFlag, badSet, run] = await Promise.all([
      task(["tasks/exp.ts", "--list"]),
      task(["tasks/exp.ts", "no-such-exp"]),
      task(["tasks/exp.ts", "llama3-long", "--frobnicate"]),
      task(["tasks/exp.ts", "llama3-long", "--set", "stepz=1"]),
      task([
        "tasks/exp.ts",
        "llama3-long",
        "--quick",
        "--device",
        "meta",
        "--set",
        "data=repeat",
        "--out",
        `${out}/run`,
      ]),
    ]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^llama3-long\s+\S/m);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /unknown experiment "no-such-exp"; known experiments: .*llama3-long/,
    );
    assert.equal(badFlag.code, 1);
    assert.match(badFlag.stderr, /--frobnicate[\s\S]*usage: deno task exp/);
    assert.equal(badSet.code, 1);
    assert.match(badSet.stderr, /unknown key "stepz"[\s\S]*valid keys:[\s\S]*seqs: number\[\]/);

    assert.equal(run.code, 0, run.stderr);
    const dir = `${out}/run`;
    assert.equal(run.stdout.trim().split("\n").at(-1), dir);
    // not a terminal: plain lines, no escape codes
    assert.ok(!(run.stdout + run.stderr).includes("\x1b"), "escape codes in piped output");
    const rec = await readRunRecords(dir);
    const plan = rec.summary.figures.plan as Record<string, Record<string, number>>;
    // Llama3-8B in 80 GiB, bf16: MsT (+ optimizer-in-backward) reaches far past the paper's 60K
    // and past 10× standard
    assert.ok(plan.maxSeq.mstOptimizerInBackward > 60000, JSON.stringify(plan.maxSeq));
    assert.ok(plan.maxSeq.mstOptimizerInBackward > 10 * plan.maxSeq.standard);
    assert.ok(plan.maxSeq.checkpoint > plan.maxSeq.standard);
    const train = rec.summary.figures.train as Record<string, number>;
    assert.ok(train.peakMiBMst < train.peakMiBStandard);
    assert.deepEqual(
      rec.charts.map((c) => c.name).sort(),
      ["breakdown", "loss-curves", "max-seq", "memory-timeline", "peak-vs-seq", "throughput"],
    );
    for (const c of rec.charts) {
      assertWellFormedXml(await Deno.readTextFile(`${dir}/charts/${c.name}.svg`), `${c.name}.svg`);
    }
    const html = await Deno.readTextFile(`${dir}/report.html`);
    assertSelfContained(html);
    assert.equal((html.match(/<svg /g) ?? []).length, 6);
    const md = await Deno.readTextFile(`${dir}/report.md`);
    assert.match(md, /## The paper's numbers beside ours/);
    assert.match(md, /\| max S, standard \(HF head\) \| ≈5K \| /);
    // the transformers-style baselines land near the paper's ≈5K and ≈15K
    assert.ok(plan.maxSeq.standardHf > 4000 && plan.maxSeq.standardHf < 7000);
    assert.ok(plan.maxSeq.checkpointHf > 12000 && plan.maxSeq.checkpointHf < 20000);

    await Deno.remove(`${dir}/report.md`);
    await Deno.remove(`${dir}/charts/max-seq.svg`);
    const rerun = await task(["tasks/report.ts", dir]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(await Deno.readTextFile(`${dir}/report.md`), md);
    assert.ok((await Deno.stat(`${dir}/charts/max-seq.svg`)).isFile);
    const missing = await task(["tasks/report.ts", `${out}/nothing`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such run directory/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

/**
 * `deno task rss-check [--growth] [--steps-curve] [--overhead] [--seqs 1024,16384]
 *   [--repeats 1] [--curve-steps 1500] [--curve-seq 512] [--json]`
 *
 * Checks the memory accounting against what the process really holds. On lavapipe the device's
 * buffers live in host memory, so a training process's resident set (Linux `/proc`) is the
 * truth the accounting must match. Each check runs `tasks/train.ts` in a subprocess:
 *
 * - `--growth` (the default): `train llama3-tiny --steps 2 --json` at each `--seqs` S, standard
 *   and MsT + recomputation (`--mst auto --checkpoint`). The growth of the peak resident set
 *   from the first S to the last must be within 1.25× (either way) of the growth of the
 *   accounted bytes: the pool's peak (`reservedBytes`) plus the modelled driver overhead.
 * - `--steps-curve`: `train llama3-tiny --seq 512 --mst auto --checkpoint --steps 1500`, the
 *   resident set sampled at steps 1, 30, 100, 300, … . Host memory must be flat: step 1500
 *   within 5% of step 300, and the climb from step 1 to step 300 under 50 MiB.
 * - `--overhead`: measures the driver's fixed and per-pipeline bytes in a fresh process and
 *   compares them with the model the planner uses (`lib/device/overhead.ts`), within 25%.
 *
 * Prints a table per check; exits 1 when a check fails. Needs Linux (`/proc`) and WebGPU.
 */

import { parseArgs } from "node:util";
import { formatBytes } from "../lib/device/dtype.ts";
import { type DriverOverhead, LAVAPIPE_OVERHEAD, overheadFor } from "../lib/device/overhead.ts";
import { residentMemory } from "../lib/util/proc_status.ts";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE =
  `usage: deno task rss-check [--growth] [--steps-curve] [--overhead] [--seqs 1024,16384]
  [--repeats 1] [--curve-steps 1500] [--curve-seq 512] [--json]

  --growth        peak resident set growth between the first and last S vs the accounted
                  growth (pool + driver overhead), standard and MsT + recomputation (default);
                  --repeats N runs each point N times and keeps the median peak RSS
  --steps-curve   resident set over a long MsT run: flat from step 300 on, climb < 50 MiB
  --overhead      measure the driver overhead and compare it with the planner's model`;

const MiB = 2 ** 20;
const GROWTH_TOLERANCE = 1.25;
const FLAT_TOLERANCE = 0.05;
const CLIMB_LIMIT = 50 * MiB;
const OVERHEAD_TOLERANCE = 0.25;
const TRAIN = new URL("./train.ts", import.meta.url).pathname;
/**
 * The V8 flag the training tasks run with (deno.json). Deno frees a WebGPU object's native
 * memory (command buffers, encoders, mapped ranges) only when V8 collects its JS wrapper, and
 * V8 does not see that memory, so with its default young generation it collected them every
 * few hundred steps: the resident set swung by about 20 MiB (S=512, MsT: 278 → 295 → 273 MiB at
 * steps 300 / 1500 / 2000). A 1 MiB semi-space collects the wrappers within a step.
 */
const V8_FLAGS = "--v8-flags=--max-semi-space-size=1";

const POLICIES = [
  { name: "standard", flags: [] as string[] },
  { name: "MsT + recomputation", flags: ["--mst", "auto", "--checkpoint"] },
];

/** What a `train --json` run reports. */
interface TrainFigures {
  peakBytes: number;
  reservedBytes: number;
  overheadBytes: number | null;
  pipelines: number;
  rssPeakBytes: number | null;
}

function childEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  env.XDG_RUNTIME_DIR ??= Deno.makeTempDirSync({ prefix: "xdg-" });
  env.NO_COLOR = "1";
  return env;
}

/** Reads a stream as lines, calling `onLine` for each; resolves with all the text. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void = () => {},
): Promise<string> {
  let all = "";
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    all += chunk;
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop()!;
    lines.forEach(onLine);
  }
  if (rest) onLine(rest);
  return all;
}

/** Runs `deno run -A <script> args…`; `onLine` sees stdout lines with the child's pid. */
async function runDeno(
  script: string,
  args: string[],
  onLine?: (line: string, pid: number) => void,
): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    // the V8 flag of `deno task train` (deno.json): WebGPU objects freed promptly
    args: ["run", "-A", V8_FLAGS, script, ...args],
    env: childEnv(),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [stdout, stderr, status] = await Promise.all([
    readLines(child.stdout, (l) => onLine?.(l, child.pid)),
    readLines(child.stderr),
    child.status,
  ]);
  if (!status.success) {
    throw new Error(
      `\`deno run -A ${script} ${args.join(" ")}\` exited with code ${status.code}:\n` +
        stderr.trim().split("\n").slice(-15).join("\n"),
    );
  }
  return { stdout, ms: performance.now() - t0 };
}

function lastJson<T>(stdout: string, what: string): T {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what}: expected a JSON line at the end of the output, got "${line}"`);
  }
}

function mib(b: number): string {
  return `${(b / MiB).toFixed(1)}`;
}

function signed(b: number): string {
  return `${b >= 0 ? "+" : ""}${mib(b)}`;
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (c: string[]) => c.map((x, i) => i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]));
  return [head, w.map((n) => "-".repeat(n)), ...rows].map((r) =>
    (r[0].startsWith("-") ? r : line(r)).join("  ").trimEnd()
  ).join("\n");
}

/** Result of {@link growthCheck}, per policy. */
interface GrowthResult {
  policy: string;
  runs: (TrainFigures & { seq: number; accountedBytes: number; ms: number })[];
  liveGrowth: number;
  accountedGrowth: number;
  rssGrowth: number;
  /** RSS growth / accounted growth. */
  ratio: number;
  ok: boolean;
}

async function growthCheck(
  seqs: number[],
  repeats: number,
  log: (s: string) => void,
): Promise<GrowthResult[]> {
  const results: GrowthResult[] = [];
  for (const p of POLICIES) {
    const runs: GrowthResult["runs"] = [];
    for (const seq of seqs) {
      // The peak RSS of one run varies by ~20 MiB (malloc arenas, when lavapipe's threads
      // compile): with repeats, the run of median peak RSS is kept.
      const tries: (TrainFigures & { ms: number })[] = [];
      for (let r = 0; r < repeats; r++) {
        log(`  train llama3-tiny --steps 2 --seq ${seq} ${p.flags.join(" ")} …`);
        const args = ["llama3-tiny", "--steps", "2", "--seq", String(seq), ...p.flags, "--json"];
        const { stdout, ms } = await runDeno(TRAIN, args);
        tries.push({ ...lastJson<TrainFigures>(stdout, "train --json"), ms });
      }
      tries.sort((a, b) => (a.rssPeakBytes ?? 0) - (b.rssPeakBytes ?? 0));
      const { ms, ...f } = tries[tries.length >> 1];
      if (f.rssPeakBytes === null) {
        throw new Error("train reported no rssPeakBytes: this check needs Linux's /proc");
      }
      if (f.overheadBytes === null) {
        throw new Error(
          "train reported no driver overhead: the adapter is not lavapipe, whose overhead is the " +
            "one measured (see lib/device/overhead.ts); run this check on lavapipe",
        );
      }
      runs.push({ ...f, seq, accountedBytes: f.reservedBytes + f.overheadBytes, ms });
    }
    const first = runs[0];
    const last = runs.at(-1)!;
    const accountedGrowth = last.accountedBytes - first.accountedBytes;
    const rssGrowth = last.rssPeakBytes! - first.rssPeakBytes!;
    const ratio = rssGrowth / accountedGrowth;
    results.push({
      policy: p.name,
      runs,
      liveGrowth: last.peakBytes - first.peakBytes,
      accountedGrowth,
      rssGrowth,
      ratio,
      ok: accountedGrowth > 0 && ratio <= GROWTH_TOLERANCE && ratio >= 1 / GROWTH_TOLERANCE,
    });
  }
  return results;
}

function growthTable(results: GrowthResult[]): string {
  const rows: string[][] = [];
  for (const r of results) {
    for (const run of r.runs) {
      rows.push([
        r.policy,
        String(run.seq),
        mib(run.peakBytes),
        mib(run.reservedBytes),
        mib(run.overheadBytes!),
        mib(run.accountedBytes),
        mib(run.rssPeakBytes!),
        "",
        `${(run.ms / 1000).toFixed(0)} s`,
      ]);
    }
    rows.push([
      `  growth (${r.ok ? "ok" : "FAIL"})`,
      "",
      signed(r.liveGrowth),
      "",
      "",
      signed(r.accountedGrowth),
      signed(r.rssGrowth),
      `${r.ratio.toFixed(2)} (live ${(r.rssGrowth / r.liveGrowth).toFixed(2)})`,
      "",
    ]);
  }
  return table(
    [
      "policy",
      "S",
      "live peak",
      "reserved",
      "overhead",
      "accounted",
      "peak RSS",
      "RSS/accounted",
      "time",
    ],
    rows,
  ) + `\n(MiB; accounted = reserved (pool) + modelled driver overhead; pass: growth ratio within ` +
    `${GROWTH_TOLERANCE}× either way)`;
}

/** One sample of the steps curve. */
interface CurvePoint {
  step: number;
  rssBytes: number;
  seconds: number;
}

const CURVE_STEPS = [1, 10, 30, 100, 300, 600, 1000, 1500, 2000, 3000];

async function stepsCurve(
  steps: number,
  seq: number,
  log: (s: string) => void,
): Promise<{ points: CurvePoint[]; ms: number; ok: boolean; flat: number; climb: number }> {
  const want = new Set([...CURVE_STEPS.filter((s) => s < steps), steps]);
  const points: CurvePoint[] = [];
  const t0 = performance.now();
  log(`  train llama3-tiny --seq ${seq} --mst auto --checkpoint --steps ${steps} …`);
  const args = ["llama3-tiny", "--seq", String(seq), "--mst", "auto", "--checkpoint"];
  const { ms } = await runDeno(TRAIN, [...args, "--steps", String(steps)], (line, pid) => {
    const m = line.match(/^step\s+(\d+)\s/);
    if (!m || !want.has(Number(m[1]))) return;
    const r = residentMemory(pid);
    if (!r) return;
    const p = {
      step: Number(m[1]),
      rssBytes: r.rssBytes,
      seconds: (performance.now() - t0) / 1000,
    };
    points.push(p);
    log(`    step ${p.step}: RSS ${mib(p.rssBytes)} MiB after ${p.seconds.toFixed(0)} s`);
  });
  const at = (s: number) => points.find((p) => p.step === s)?.rssBytes;
  const r1 = at(1);
  const r300 = at(300);
  const rLast = at(steps);
  if (r1 === undefined || r300 === undefined || rLast === undefined) {
    throw new Error(
      `the steps curve needs samples at steps 1, 300 and ${steps} (got ${
        points.map((p) => p.step).join(", ")
      }); run at least 300 steps`,
    );
  }
  const flat = rLast / r300 - 1;
  const climb = r300 - r1;
  return { points, ms, flat, climb, ok: Math.abs(flat) <= FLAT_TOLERANCE && climb < CLIMB_LIMIT };
}

/** Measured in a fresh process: see {@link probeOverhead}. */
interface OverheadFigures {
  adapter: string;
  fixedBytes: number;
  perPipelineBytes: number;
  pipelines: number;
  reservedBytes: number;
  heapGrowthBytes: number;
}

/**
 * Runs in the child of `--overhead`: resident set before and after creating the device, then
 * after three llama3-tiny steps at S=16 (every kernel of a step compiled, tiny buffers). The
 * per-pipeline figure is what the steps added minus the pool's bytes and the JS heap's growth,
 * per pipeline.
 */
async function probeOverhead(): Promise<OverheadFigures> {
  const { WebGPUDevice } = await import("../lib/device/webgpu.ts");
  const { getPreset } = await import("../lib/config/presets.ts");
  const { Model } = await import("../lib/models/model.ts");
  const { Trainer } = await import("../lib/train/trainer.ts");
  const cfg = getPreset("llama3-tiny");
  const r0 = residentMemory()!;
  const dev = await WebGPUDevice.create();
  await dev.sync();
  const r1 = residentMemory()!;
  const h1 = Deno.memoryUsage().heapTotal;
  const model = Model.build(dev, cfg, {}, { seed: 1 });
  const trainer = new Trainer(dev, model);
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 31) % cfg.vocabSize);
  for (let i = 0; i < 3; i++) await trainer.step({ ids, targets: ids });
  const r2 = residentMemory()!;
  const heapGrowthBytes = Deno.memoryUsage().heapTotal - h1;
  const reservedBytes = dev.allocator.stats().peakReservedBytes;
  const pipelines = dev.pipelineCount;
  const adapter = dev.adapterInfo.description;
  model.dispose();
  dev.destroy();
  return {
    adapter,
    fixedBytes: r1.rssBytes - r0.rssBytes,
    perPipelineBytes: (r2.rssBytes - r1.rssBytes - reservedBytes - heapGrowthBytes) / pipelines,
    pipelines,
    reservedBytes,
    heapGrowthBytes,
  };
}

/** Fresh processes measured by `--overhead`; the median is compared (one run is noisy). */
const OVERHEAD_PROBES = 3;

async function overheadCheck(log: (s: string) => void) {
  const runs: OverheadFigures[] = [];
  for (let i = 0; i < OVERHEAD_PROBES; i++) {
    log(`  measuring the driver overhead in a fresh process (${i + 1}/${OVERHEAD_PROBES}) …`);
    const { stdout } = await runDeno(new URL(import.meta.url).pathname, ["--probe-overhead"]);
    runs.push(lastJson<OverheadFigures>(stdout, "--probe-overhead"));
  }
  const mid = <K extends keyof OverheadFigures>(k: K) =>
    [...runs].sort((a, b) => (a[k] as number) - (b[k] as number))[runs.length >> 1][k];
  const m: OverheadFigures = {
    ...runs[0],
    fixedBytes: mid("fixedBytes"),
    perPipelineBytes: mid("perPipelineBytes"),
    heapGrowthBytes: mid("heapGrowthBytes"),
  };
  const model: DriverOverhead | null = overheadFor(m.adapter);
  const near = (a: number, b: number) => Math.abs(a / b - 1) <= OVERHEAD_TOLERANCE;
  const ok = model !== null && near(m.fixedBytes, model.fixedBytes) &&
    near(m.perPipelineBytes, model.perPipelineBytes);
  return { measured: m, model: model ?? LAVAPIPE_OVERHEAD, modelled: model !== null, ok };
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      growth: { type: "boolean" },
      "steps-curve": { type: "boolean" },
      overhead: { type: "boolean" },
      "probe-overhead": { type: "boolean" },
      seqs: { type: "string" },
      repeats: { type: "string" },
      "curve-steps": { type: "string" },
      "curve-seq": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values["probe-overhead"]) {
    console.log(JSON.stringify(await probeOverhead()));
    return 0;
  }
  if (!residentMemory()) {
    throw new Error("this check reads /proc/<pid>/status: it needs Linux");
  }
  const seqs = (values.seqs ?? "1024,16384").split(",").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--seqs: "${s}" is not a positive integer`);
    return n;
  });
  if (seqs.length < 2) {
    throw new Error("--seqs needs two sequence lengths or more, e.g. 1024,16384");
  }
  const int = (flag: string, v: string | undefined, d: number) => {
    const n = v === undefined ? d : Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer`);
    return n;
  };
  const curveSteps = int("--curve-steps", values["curve-steps"], 1500);
  const curveSeq = int("--curve-seq", values["curve-seq"], 512);
  const runGrowth = values.growth || !(values["steps-curve"] || values.overhead);
  const log = (s: string) => values.json ? console.error(s) : console.log(s);
  const out: Record<string, unknown> = {};
  let ok = true;

  if (values.overhead) {
    log("driver overhead (lib/device/overhead.ts):");
    const o = await overheadCheck(log);
    const m = o.measured;
    log(
      table([
        "figure",
        `measured (median of ${OVERHEAD_PROBES})`,
        o.modelled ? `model (${o.model.driver})` : "model (none)",
      ], [
        ["fixed per device (MiB)", mib(m.fixedBytes), o.modelled ? mib(o.model.fixedBytes) : "-"],
        [
          `per pipeline (MiB, ${m.pipelines} pipelines)`,
          mib(m.perPipelineBytes),
          o.modelled ? mib(o.model.perPipelineBytes) : "-",
        ],
      ]),
    );
    log(
      `(adapter ${m.adapter}; pool ${formatBytes(m.reservedBytes)} and JS heap growth ${
        formatBytes(m.heapGrowthBytes)
      } subtracted) ${o.ok ? "ok" : "FAIL"}: model within ${100 * OVERHEAD_TOLERANCE}%`,
    );
    ok &&= o.ok;
    out.overhead = o;
  }
  if (runGrowth) {
    log(`peak RSS growth vs accounted growth, S = ${seqs.join(" → ")}:`);
    const g = await growthCheck(seqs, int("--repeats", values.repeats, 1), log);
    log(growthTable(g));
    ok &&= g.every((r) => r.ok);
    out.growth = g;
  }
  if (values["steps-curve"]) {
    log(`host memory over ${curveSteps} steps (S=${curveSeq}, MsT + recomputation):`);
    const c = await stepsCurve(curveSteps, curveSeq, log);
    log(table(
      ["step", "RSS (MiB)", "elapsed"],
      c.points.map((p) => [String(p.step), mib(p.rssBytes), `${p.seconds.toFixed(0)} s`]),
    ));
    log(
      `step ${curveSteps} vs step 300: ${(100 * c.flat).toFixed(1)}% (pass: within ${
        100 * FLAT_TOLERANCE
      }%); climb from step 1 to 300: ${signed(c.climb)} MiB (pass: under ${mib(CLIMB_LIMIT)}); ` +
        `${c.ok ? "ok" : "FAIL"}; ${(c.ms / 1000).toFixed(0)} s for ${curveSteps} steps`,
    );
    ok &&= c.ok;
    out.stepsCurve = c;
  }
  if (values.json) console.log(JSON.stringify({ ok, ...out }));
  log(ok ? "rss-check: ok" : "rss-check: FAILED");
  return ok ? 0 : 1;
}

if (import.meta.main) await runTask("rss-check", () => main(Deno.args));

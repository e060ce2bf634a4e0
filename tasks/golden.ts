/**
 * `deno task golden [--write] [--only plans|maxseq|alst|losses] [--file F]`
 *
 * The golden file of the techniques redesign (issue 20): the figures the workbench computes,
 * written once before code moves and reproduced byte for byte after. One JSON line per case in
 * `tests/fixtures/golden.jsonl`, in a fixed order:
 *
 * - `plan`: every preset × named policy × {ours, hf} × {1 GPU, 8 GPUs with ZeRO-3 + Ulysses SP 8,
 *   8 GPUs with ZeRO-2}
 *   where the combination is allowed (a refused combination records its error message, so a
 *   refusal that changes wording shows too). Full-size presets at S = 4096 in bf16, tiny
 *   presets at S = 256 in f32; no budget, so the whole step runs.
 * - `maxseq`: the longest S within 80 GiB (bf16) for the paper's presets under each policy the
 *   claims and experiments use, in both profiles.
 * - `alst`: ALST's three setups as `lib/plan/alst.ts` plans them.
 * - `losses`: 5 WebGPU training steps of every tiny preset (standard and MsT + recomputation),
 *   the losses as JavaScript prints them.
 *
 * Without `--write` it recomputes and compares: a line that differs is printed with its first
 * differing field, and the exit status is 1. The loss lines depend on the machine's float
 * arithmetic (lavapipe compiles for the host CPU), so `--check` prints their max |Δ| too;
 * the test (tests/golden_test.ts) holds plans to bytes and losses to 1e-6.
 */

import { parseArgs } from "@std/cli/parse-args";
import { getPreset } from "../lib/config/presets.ts";
import { type MemoryPolicy, POLICIES } from "../lib/techniques/policy.ts";
import { maxSequence, planStep } from "../lib/plan/planner.ts";
import { ALST_PRESET, ALST_SETUPS, planAlstAnchor } from "../lib/plan/alst.ts";
import { parseBytes } from "../lib/device/dtype.ts";
import { createDevice } from "../lib/device/create.ts";
import { runSteps } from "../lib/train/run_steps.ts";
import { writeTextAtomic } from "../lib/util/atomic_write.ts";
import { runTask } from "../lib/cli/task_main.ts";

/** Where the golden file lives. */
const GOLDEN_FILE = new URL("../tests/fixtures/golden.jsonl", import.meta.url);

/** The sections of the golden file, in order. */
export const GOLDEN_SECTIONS = ["plans", "maxseq", "alst", "losses"] as const;
/** One section. */
export type GoldenSection = typeof GOLDEN_SECTIONS[number];

/** One case: its key and how to compute its value. */
export interface GoldenCase {
  /** The section and the case, e.g. `plan llama3-8b mst hf gpus=1`. */
  key: string;
  /** Computes the value (errors are recorded as `{ error }`). */
  compute: () => Promise<unknown>;
}

/** One line of the golden file. */
export interface GoldenLine {
  /** The section and the case, e.g. `plan llama3-8b mst hf gpus=8`. */
  key: string;
  /** What was computed (a plan, a max-S result, losses) or the error it raised. */
  value: unknown;
}

const TINY = (name: string) => name.endsWith("-tiny");
/**
 * The presets the golden file was written for (before the redesign); presets added since
 * (`llama3.3-70b`) are not in it, so adding a preset does not change the file.
 */
const GOLDEN_PRESETS: readonly string[] = [
  "llama3-8b",
  "llama2-7b",
  "mistral-7b",
  "qwen2-7b",
  "gemma2-9b",
  "gemma2-2b",
  "llama3-tiny",
  "llama2-tiny",
  "mistral-tiny",
  "qwen2-tiny",
  "gemma2-tiny",
];
const FRAMEWORKS = ["ours", "hf"] as const;
/** The multi-GPU setups: ALST's ZeRO-3 + Ulysses SP 8, and ZeRO-2 without SP. */
const EIGHT_GPUS = {
  "zero3-sp8": { gpus: 8, zero: 3 as const, sp: 8 },
  "zero2": { gpus: 8, zero: 2 as const },
};

function withFramework(policy: MemoryPolicy, framework: "ours" | "hf"): MemoryPolicy {
  const { framework: _, ...rest } = policy;
  return framework === "hf" ? { ...rest, framework: "hf" } : rest;
}

/** Drops what varies between runs of the same code (none today; kept explicit). */
function stable(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

async function attempt(f: () => Promise<unknown>): Promise<unknown> {
  try {
    return stable(await f());
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

/** The plan cases: every preset × named policy × profile × GPUs, deduplicated by policy. */
function* planCases(): Generator<GoldenCase> {
  for (const preset of GOLDEN_PRESETS) {
    const cfg = getPreset(preset);
    const tiny = TINY(preset);
    const seq = tiny ? 256 : 4096;
    const dtype = tiny ? "f32" as const : "bf16" as const;
    for (const [name, named] of Object.entries(POLICIES)) {
      for (const framework of FRAMEWORKS) {
        // hfStandard under "ours" is standard: each distinct policy once
        if (name.startsWith("hf") && framework === "ours") continue;
        for (const gpus of ["1", ...Object.keys(EIGHT_GPUS)] as const) {
          const base = withFramework(named, framework);
          const policy = gpus === "1"
            ? base
            : { ...base, parallel: EIGHT_GPUS[gpus as keyof typeof EIGHT_GPUS] };
          yield {
            key: `plan ${preset} ${name} ${framework} gpus=${gpus === "1" ? "1" : `8 ${gpus}`}`,
            compute: () => planStep({ cfg, policy, seq, dtype, budget: Infinity }),
          };
        }
      }
    }
  }
}

/** The longest S within 80 GiB (bf16) per paper preset and policy, in both profiles. */
function* maxSeqCases(): Generator<GoldenCase> {
  const budget = parseBytes("80GiB");
  const policies = ["standard", "checkpoint", "mst", "mstOib"] as const;
  for (const preset of GOLDEN_PRESETS.filter((p) => !TINY(p))) {
    const cfg = getPreset(preset);
    for (const name of policies) {
      for (const framework of FRAMEWORKS) {
        const policy = withFramework(POLICIES[name], framework);
        const compute = async () => {
          const r = await maxSequence({ cfg, policy, dtype: "bf16", budget });
          return { maxSeq: r.maxSeq, limitedBy: r.limitedBy, probes: r.probes, plan: r.plan };
        };
        yield { key: `maxseq ${preset} ${name} ${framework}`, compute };
      }
    }
  }
}

/** ALST's three setups as the planner places them. */
function* alstCases(): Generator<GoldenCase> {
  for (const setup of ALST_SETUPS) {
    yield {
      key: `alst ${JSON.stringify(setup)}`,
      compute: () => planAlstAnchor(getPreset(ALST_PRESET), setup),
    };
  }
}

/** 5 WebGPU steps of every tiny preset, standard and MsT + recomputation. */
function* lossCases(): Generator<GoldenCase> {
  for (const preset of GOLDEN_PRESETS.filter(TINY)) {
    const cfg = getPreset(preset);
    const seq = 64;
    const ids = Int32Array.from({ length: seq }, (_, i) => (i * 7919 + 13) % cfg.vocabSize);
    const targets = Int32Array.from({ length: seq }, (_, i) => ids[(i + 1) % seq]);
    for (const name of ["standard", "mst"] as const) {
      const compute = async () => {
        const dev = await createDevice("webgpu");
        try {
          const r = await runSteps(dev, cfg, POLICIES[name], { ids, targets }, { steps: 5 });
          return { losses: r.losses, peakBytes: r.peakBytes };
        } finally {
          dev.destroy();
        }
      };
      yield { key: `losses ${preset} ${name} seq=${seq}`, compute };
    }
  }
}

const SECTION_CASES: Record<GoldenSection, () => Generator<GoldenCase>> = {
  plans: planCases,
  maxseq: maxSeqCases,
  alst: alstCases,
  losses: lossCases,
};

/** Every golden case of the given sections, in file order. */
export function goldenCases(sections: readonly GoldenSection[] = GOLDEN_SECTIONS): GoldenCase[] {
  return GOLDEN_SECTIONS.filter((x) => sections.includes(x)).flatMap((s) => [
    ...SECTION_CASES[s](),
  ]);
}

/** Computes the golden lines of the given cases, in order. */
export async function computeGolden(
  cases: readonly GoldenCase[],
  onLine?: (line: GoldenLine) => void,
): Promise<GoldenLine[]> {
  const lines: GoldenLine[] = [];
  for (const c of cases) {
    const line = { key: c.key, value: await attempt(c.compute) };
    lines.push(line);
    onLine?.(line);
  }
  return lines;
}

/** The section a golden key belongs to. */
export function sectionOf(key: string): GoldenSection {
  const head = key.split(" ")[0];
  const map: Record<string, GoldenSection> = {
    plan: "plans",
    maxseq: "maxseq",
    alst: "alst",
    losses: "losses",
  };
  const s = map[head];
  if (!s) throw new Error(`golden file: unknown case "${key}"`);
  return s;
}

/** Reads the golden file (or another in the same format). */
export async function readGolden(file: URL | string = GOLDEN_FILE): Promise<GoldenLine[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new Error(
      `cannot read the golden file ${file}: ${(e as Error).message}; ` +
        `write it with \`deno task golden --write\``,
    );
  }
  return text.split("\n").filter((l) => l.length > 0).map((l, i) => {
    try {
      return JSON.parse(l) as GoldenLine;
    } catch {
      throw new Error(`golden file ${file}, line ${i + 1}: not JSON`);
    }
  });
}

/** The first path at which two JSON values differ, or null when they are equal. */
export function firstDifference(a: unknown, b: unknown, path = ""): string | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = firstDifference(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        `${path}.${k}`,
      );
      if (d) return d;
    }
  }
  return `${path || "(value)"}: ${JSON.stringify(a)?.slice(0, 200)} → ${
    JSON.stringify(b)?.slice(0, 200)
  }`;
}

const USAGE = `usage: deno task golden [--write] [--only plans|maxseq|alst|losses]... [--file F]
  without --write: recompute and compare with the golden file (exit 1 on a difference)
  --write          recompute and replace the golden file (atomically)
  --only SECTION   only these sections (repeatable; default all)
  --file F         another golden file (default tests/fixtures/golden.jsonl)`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      write: { type: "boolean", default: false },
      only: { type: "string", multiple: true },
      file: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const only = (values.only ?? [...GOLDEN_SECTIONS]) as string[];
  for (const s of only) {
    if (!(GOLDEN_SECTIONS as readonly string[]).includes(s)) {
      throw new Error(`--only ${s}: sections are ${GOLDEN_SECTIONS.join(", ")}`);
    }
  }
  const sections = only as GoldenSection[];
  const file = values.file ?? GOLDEN_FILE.pathname;
  const t0 = performance.now();
  let n = 0;
  const lines = await computeGolden(goldenCases(sections), () => {
    if (++n % 50 === 0) console.error(`… ${n} cases`);
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (values.write) {
    if (sections.length !== GOLDEN_SECTIONS.length) {
      // keep the other sections' lines as they are
      const old = await readGolden(file).catch(() => [] as GoldenLine[]);
      const kept = old.filter((l) => !sections.includes(sectionOf(l.key)));
      lines.push(...kept);
      lines.sort((a, b) =>
        GOLDEN_SECTIONS.indexOf(sectionOf(a.key)) - GOLDEN_SECTIONS.indexOf(sectionOf(b.key))
      );
    }
    await writeTextAtomic(file, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    console.log(`wrote ${lines.length} golden lines to ${file} (${secs} s)`);
    return 0;
  }
  const golden = new Map((await readGolden(file)).map((l) => [l.key, l.value]));
  let differ = 0;
  let lossDelta = 0;
  for (const line of lines) {
    if (!golden.has(line.key)) {
      console.log(`new case (not in the golden file): ${line.key}`);
      differ++;
      continue;
    }
    const want = golden.get(line.key);
    golden.delete(line.key);
    const d = firstDifference(want, line.value);
    if (sectionOf(line.key) === "losses") {
      const a = (want as { losses?: number[] }).losses ?? [];
      const b = (line.value as { losses?: number[] }).losses ?? [];
      a.forEach((x, i) => lossDelta = Math.max(lossDelta, Math.abs(x - (b[i] ?? NaN))));
    }
    if (d) {
      console.log(`differs: ${line.key}\n  ${d}`);
      differ++;
    }
  }
  const missing = [...golden.keys()].filter((k) => sections.includes(sectionOf(k)));
  for (const k of missing) console.log(`missing (in the golden file, not computed): ${k}`);
  console.log(
    `${lines.length} cases in ${secs} s: ${lines.length - differ} identical, ${differ} differ, ` +
      `${missing.length} missing${
        sections.includes("losses") ? `; losses max |Δ| ${lossDelta.toExponential(2)}` : ""
      }`,
  );
  return differ + missing.length === 0 ? 0 : 1;
}

if (import.meta.main) await runTask("golden", () => main(Deno.args), { errorCode: 2 });

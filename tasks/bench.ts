/**
 * `deno task bench [--json] [--profile] [--only <group>] [--no-peer] [--seqs S,…] [--steps N]
 * [--base <worktree>]`: throughput of our kernels beside TensorFlow.js's WebGPU backend and
 * PyTorch on the CPU, in one process. Groups: matmul, train (training step at S=1024 beside
 * TF.js and PyTorch, f32 and mixed-precision f16 rows), attention, scaling (standard vs MsT + recomputation at each of `--seqs`,
 * `--steps` timed steps each, interleaved; `--base` adds another checkout's steps interleaved
 * with ours) — add a `lib/bench/<group>.ts` producing {@link BenchRow}s and list it below.
 *
 * `--json` prints `{"rows": [...]}` as the last line; `--profile` records per-kernel GPU time
 * with timestamp queries and prints it (and the attention share in the scaling rows);
 * `--no-peer` skips TF.js and PyTorch.
 */

import { parseArgs } from "node:util";
import { benchAttentionRows } from "../lib/bench/attention.ts";
import { benchMatmul } from "../lib/bench/matmul.ts";
import { benchScaling, loadTree, type Tree } from "../lib/bench/scaling.ts";
import { type BenchRow, formatTable } from "../lib/bench/row.ts";
import { benchTrainStep } from "../lib/bench/train_step.ts";
import { createTfjsPeer, type Tf } from "../lib/bench/tfjs_peer.ts";
import { findTorchPython, type TorchPython } from "../lib/bench/torch_peer.ts";
import { WebGPUDevice } from "../lib/device/webgpu.ts";
import { runTask } from "../lib/cli/task_main.ts";

/** The parsed flags (see the module doc). */
interface BenchFlags {
  seqs: string;
  steps: string;
  base?: string;
  profile: boolean;
  torch: TorchPython | null | "off";
}

type Group = (
  dev: WebGPUDevice,
  tf: Tf | null,
  log: (s: string) => void,
  flags: BenchFlags,
) => Promise<BenchRow[]>;

const GROUPS: Record<string, Group> = {
  matmul: (dev, tf, log) => benchMatmul(dev, tf, undefined, log),
  train: async (dev, tf, log, flags) => {
    // f16 rows on a second device with shader-f16 (skipped, with a note, when the adapter lacks it)
    let dev16: WebGPUDevice | null = null;
    try {
      dev16 = await WebGPUDevice.create({ floats: "f16" });
    } catch (e) {
      log(`  f16 rows skipped: ${(e as Error).message}`);
    }
    try {
      return await benchTrainStep(dev, tf, log, { torch: flags.torch, dev16 });
    } finally {
      dev16?.destroy();
    }
  },
  attention: (dev, tf, log) => benchAttentionRows(dev, tf, log),
  scaling: async (_dev, _tf, log, flags) => {
    const trees: Tree[] = [await loadTree(new URL("..", import.meta.url).pathname, "ours")];
    if (flags.base) trees.push(await loadTree(flags.base, "base"));
    return await benchScaling(log, {
      seqs: seqs(flags.seqs),
      steps: Number(flags.steps),
      trees,
      profile: flags.profile,
    });
  },
};

/** `--seqs 1024,4096`: positive integers, or a readable error. */
function seqs(text: string): number[] {
  const out = text.split(",").map(Number);
  if (out.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`--seqs: expected comma-separated positive integers, got "${text}"`);
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      only: { type: "string" },
      "no-peer": { type: "boolean", default: false },
      seqs: { type: "string", default: "1024,4096,8192,16384" },
      steps: { type: "string", default: "3" },
      base: { type: "string" },
    },
  });
  const names = values.only ? values.only.split(",") : Object.keys(GROUPS);
  for (const n of names) {
    if (!(n in GROUPS)) {
      throw new Error(`unknown bench group "${n}"; groups: ${Object.keys(GROUPS).join(", ")}`);
    }
  }
  const dev = await WebGPUDevice.create({ profile: values.profile });
  const tf = values["no-peer"] ? null : await createTfjsPeer();
  const flags: BenchFlags = {
    seqs: values.seqs,
    steps: values.steps,
    base: values.base,
    profile: values.profile,
    torch: values["no-peer"] ? "off" : await findTorchPython(),
  };
  const log = values.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
  log(`device: ${dev.adapterInfo.description}`);
  const rows: BenchRow[] = [];
  for (const n of names) rows.push(...await GROUPS[n](dev, tf, log, flags));
  console.log(formatTable(rows));
  const profiled = values.profile ? dev.profileReport() : [];
  if (profiled.length > 0) {
    // the shared device's kernels (the scaling group profiles its own steps, logged above)
    console.log("\nper-kernel GPU time (timestamp queries):");
    for (const p of profiled) {
      console.log(
        `  ${p.kernel.padEnd(24)} ${String(p.calls).padStart(5)} calls  ${p.ms.toFixed(1)} ms`,
      );
    }
  }
  if (values.json) console.log(JSON.stringify({ rows }));
  dev.destroy();
  return 0;
}

await runTask("bench", () => main(Deno.args), { errorCode: 2 });

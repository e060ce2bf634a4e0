/**
 * `deno task bench [--json] [--profile] [--only <group>]`: throughput of our kernels beside
 * TensorFlow.js's WebGPU backend, in one process. Groups: matmul, train (training step),
 * attention — add a `lib/bench/<group>.ts` producing {@link BenchRow}s and list it below).
 *
 * `--json` prints `{"rows": [...]}` as the last line; `--profile` records per-kernel GPU time
 * with timestamp queries and prints it; `--no-peer` skips TF.js.
 */

import { parseArgs } from "node:util";
import { benchAttentionRows } from "../lib/bench/attention.ts";
import { benchMatmul } from "../lib/bench/matmul.ts";
import { type BenchRow, formatTable } from "../lib/bench/row.ts";
import { benchTrainStep } from "../lib/bench/train_step.ts";
import { createTfjsPeer, type Tf } from "../lib/bench/tfjs_peer.ts";
import { findTorchPython, type TorchPython } from "../lib/bench/torch_peer.ts";
import { WebGPUDevice } from "../lib/device/webgpu.ts";

type Group = (
  dev: WebGPUDevice,
  tf: Tf | null,
  log: (s: string) => void,
) => Promise<BenchRow[]>;

let torch: TorchPython | null = null;

const GROUPS: Record<string, Group> = {
  matmul: (dev, tf, log) => benchMatmul(dev, tf, undefined, log),
  train: (dev, tf, log) => benchTrainStep(dev, tf, log, { torch }),
  attention: (dev, tf, log) => benchAttentionRows(dev, tf, log),
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    json: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    only: { type: "string" },
    "no-peer": { type: "boolean", default: false },
  },
});

const names = values.only ? values.only.split(",") : Object.keys(GROUPS);
for (const n of names) {
  if (!(n in GROUPS)) {
    console.error(`unknown bench group "${n}"; groups: ${Object.keys(GROUPS).join(", ")}`);
    Deno.exit(2);
  }
}
const dev = await WebGPUDevice.create({ profile: values.profile });
const tf = values["no-peer"] ? null : await createTfjsPeer();
torch = values["no-peer"] ? null : await findTorchPython();
const log = values.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
log(`device: ${dev.adapterInfo.description}`);
const rows: BenchRow[] = [];
for (const n of names) rows.push(...await GROUPS[n](dev, tf, log));
console.log(formatTable(rows));
if (values.profile) {
  console.log("\nper-kernel GPU time (timestamp queries):");
  for (const p of dev.profileReport()) {
    console.log(
      `  ${p.kernel.padEnd(24)} ${String(p.calls).padStart(5)} calls  ${p.ms.toFixed(1)} ms`,
    );
  }
}
if (values.json) console.log(JSON.stringify({ rows }));
dev.destroy();
Deno.exit(0);

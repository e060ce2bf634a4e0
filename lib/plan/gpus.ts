/**
 * Target-device profiles for planning (`plan --gpu NAME`, `--overhead none|cuda|lavapipe`): the
 * memory a plan may use and what the device holds beyond the planned allocations.
 *
 * Browser-safe: no `Deno.*`, no `node:` imports (the web page imports it with the planner).
 *
 * - A datacenter GPU's profile carries no driver overhead by default (`none`): lavapipe's is
 *   host memory of a software rasterizer and has no place on an A100.
 * - `cuda` counts a CUDA context measured in a cited source ({@link OVERHEADS}); it is never
 *   added unless asked for, and the plan names it.
 * - `lavapipe` is the driver this workbench runs on (measured, `lib/device/overhead.ts`).
 */

import { type DriverOverhead, LAVAPIPE_OVERHEAD } from "../device/overhead.ts";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** A driver overhead with where its figure comes from. */
export interface OverheadProfile extends DriverOverhead {
  /** The measurement the figure is taken from. */
  readonly source: string;
}

/** The overhead models a plan can add, by name. */
export const OVERHEADS = {
  none: {
    driver: "none",
    fixedBytes: 0,
    perPipelineBytes: 0,
    source: "nothing counted beyond the planned allocations",
  },
  cuda: {
    driver: "CUDA context",
    fixedBytes: 300 * MiB,
    perPipelineBytes: 0,
    source: "≈300 MB CUDA context with lazy module loading (CUDA ≥ 11.7), measured by " +
      "PyTorch's ptrblck in github.com/pytorch/pytorch/issues/107667 (2023-08-28); " +
      "300–400 MB in pytorch/pytorch#20532",
  },
  lavapipe: {
    ...LAVAPIPE_OVERHEAD,
    source: "Mesa lavapipe under Deno, measured with `deno task rss-check --overhead` " +
      "(lib/device/overhead.ts)",
  },
} as const satisfies Record<string, OverheadProfile>;

/** A name of {@link OVERHEADS}. */
export type OverheadName = keyof typeof OVERHEADS;

/** A GPU a plan can target. */
export interface GpuProfile {
  /** The CLI name, e.g. `a100-80g`. */
  readonly id: string;
  /** The product name. */
  readonly name: string;
  /**
   * Device memory in bytes: the datasheet's "GB" read as GiB, as PyTorch reports it (an
   * "80 GB" A100 shows 81,920 MiB in nvidia-smi).
   */
  readonly memoryBytes: number;
  /** The overhead counted by default ({@link OVERHEADS}). */
  readonly overhead: OverheadName;
  /** Where the capacity comes from. */
  readonly source: string;
}

/** The GPUs a plan can target, by CLI name. */
export const GPUS: Readonly<Record<string, GpuProfile>> = Object.freeze({
  "a100-40g": {
    id: "a100-40g",
    name: "NVIDIA A100 40GB",
    memoryBytes: 40 * GiB,
    overhead: "none",
    source: "NVIDIA A100 datasheet: 40 GB HBM2",
  },
  "a100-80g": {
    id: "a100-80g",
    name: "NVIDIA A100 80GB",
    memoryBytes: 80 * GiB,
    overhead: "none",
    source: "NVIDIA A100 datasheet: 80 GB HBM2e (the MsT paper's GPU)",
  },
  "h100-80g": {
    id: "h100-80g",
    name: "NVIDIA H100 80GB",
    memoryBytes: 80 * GiB,
    overhead: "none",
    source: "NVIDIA H100 datasheet: 80 GB HBM3 (ALST's GPU)",
  },
  "h200": {
    id: "h200",
    name: "NVIDIA H200",
    memoryBytes: 141 * GiB,
    overhead: "none",
    source: "NVIDIA H200 datasheet: 141 GB HBM3e",
  },
  "l40s": {
    id: "l40s",
    name: "NVIDIA L40S",
    memoryBytes: 48 * GiB,
    overhead: "none",
    source: "NVIDIA L40S datasheet: 48 GB GDDR6",
  },
  "rtx4090": {
    id: "rtx4090",
    name: "NVIDIA GeForce RTX 4090",
    memoryBytes: 24 * GiB,
    overhead: "none",
    source: "NVIDIA RTX 4090 specifications: 24 GB GDDR6X",
  },
});

/** Parses a `--gpu` name; the error lists the known ones. */
export function parseGpu(name: string): GpuProfile {
  const g = GPUS[name.toLowerCase()];
  if (g) return g;
  throw new Error(
    `--gpu: unknown GPU "${name}"; known GPUs are ${Object.keys(GPUS).join(", ")} ` +
      `(or give --budget SIZE and --overhead none|cuda|lavapipe for another device)`,
  );
}

/** Parses an `--overhead` name; the error lists the allowed ones. */
export function parseOverhead(name: string): OverheadProfile & { name: OverheadName } {
  if (Object.hasOwn(OVERHEADS, name)) {
    return { ...OVERHEADS[name as OverheadName], name: name as OverheadName };
  }
  throw new Error(
    `--overhead: unknown overhead "${name}"; overheads are ${Object.keys(OVERHEADS).join(", ")} ` +
      `(none = nothing beyond the plan, cuda = a cited CUDA context, lavapipe = this machine's driver)`,
  );
}

/** What a plan targets: the budget and the overhead, each with where it comes from. */
export interface DeviceTarget {
  /** The GPU, when one was named. */
  gpu: GpuProfile | null;
  /** Budget in bytes (Infinity: none). */
  budget: number;
  /** The overhead counted. */
  overhead: OverheadProfile & { name: OverheadName };
}

/**
 * Resolves `--gpu`, `--budget` and `--overhead`: the budget defaults to the GPU's memory, the
 * overhead to the GPU's (`none` for datacenter GPUs); without a GPU the overhead defaults to
 * lavapipe's (the device this workbench runs on) and the budget to none.
 */
export function resolveTarget(
  opts: { gpu?: string; budget?: number; overhead?: string },
): DeviceTarget {
  const gpu = opts.gpu === undefined ? null : parseGpu(opts.gpu);
  const overhead = parseOverhead(opts.overhead ?? gpu?.overhead ?? "lavapipe");
  return { gpu, budget: opts.budget ?? gpu?.memoryBytes ?? Infinity, overhead };
}

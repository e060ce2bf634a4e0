/**
 * The `scaling` group of `deno task bench`: llama3-tiny training steps at several S, standard,
 * MsT (auto) + recomputation and MsT + selective recomputation (attention kept, when the
 * checkout has it), timed interleaved, with the MsT / standard step-time ratios per S, and
 * dispatches, bytes bound and peak live bytes per step of each policy.
 *
 * With `--base <worktree>` the same steps of another checkout of this repository (e.g. the
 * commit a change starts from) run in the same process, interleaved with ours (base standard,
 * ours standard, base MsT, ours MsT, …), each tree on its own WebGPU device; the rows then
 * show ours / base speed-ups measured under the same machine load. With `--profile`, one
 * extra standard step per tree and S runs on a profiling device and the rows give the share
 * of the attention kernels in the step's GPU time.
 *
 * Bytes per step are counted on a meta device (no compute): for each dispatch the bytes of
 * every bound tensor and staged texture once, for each copy and texture staging the bytes
 * read plus written. It is the traffic the kernels must at least move, the same on any GPU.
 */

import type { BenchRow } from "./row.ts";
import { median } from "./tfjs_peer.ts";

/** What the scaling group needs from a checkout of this repository. */
export interface Tree {
  /** Label in the rows ("ours", "base"). */
  label: string;
  /** The checkout's `lib/device/webgpu.ts` `WebGPUDevice`. */
  WebGPUDevice: { create(opts?: { profile?: boolean }): Promise<GpuDevice> };
  /** Its `lib/device/meta.ts` `MetaDevice`. */
  MetaDevice: new () => MetaLike;
  /**
   * Builds its `Model` (`lib/models/model.ts`) with a memory policy and an init seed, whichever
   * of the two `Model.build` signatures the checkout has: `(dev, cfg, policy, { seed })` since
   * the policy has its own type (`lib/techniques/policy.ts`), `(dev, cfg, { seed, ...policy })`
   * before.
   */
  buildModel(dev: unknown, cfg: unknown, policy: object, seed: number): ModelLike;
  /** Its `Trainer` (`lib/train/trainer.ts`). */
  Trainer: new (dev: unknown, model: ModelLike) => {
    step(b: unknown): Promise<{ ms: number; loss: number }>;
  };
  /** Its `getPreset`. */
  getPreset(name: string): unknown;
  /** Its `makeBatches`. */
  makeBatches(kind: string, cfg: unknown, S: number, seed: number): Promise<{ next(): unknown }>;
  /** The bench policies this checkout can run (an older one lacks selective recomputation). */
  policies: PolicyName[];
}

interface GpuDevice {
  dispatches: number;
  destroy(): void;
  profileReport(): { kernel: string; ms: number }[];
  resetProfile(): void;
}
interface ModelLike {
  dispose(): void;
}
interface MetaLike {
  dispatch(call: unknown): void;
  copy(...args: unknown[]): void;
  allocator: { peakBytes: number; resetPeak(): void };
}

/** Loads the modules the scaling group uses from a checkout at `root` (a path). */
export async function loadTree(root: string, label: string): Promise<Tree> {
  const url = (p: string) => new URL(p, `file://${root.replace(/\/?$/, "/")}`).href;
  const [webgpu, meta, model, trainer, presets, data] = await Promise.all([
    import(url("lib/device/webgpu.ts")),
    import(url("lib/device/meta.ts")),
    import(url("lib/models/model.ts")),
    import(url("lib/train/trainer.ts")),
    import(url("lib/config/presets.ts")),
    import(url("lib/train/data_source.ts")),
  ]);
  let separatePolicy = true;
  try {
    await Deno.stat(new URL(url("lib/techniques/policy.ts")));
  } catch {
    separatePolicy = false;
  }
  const policies: PolicyName[] = ["standard", "MsT+checkpoint"];
  if (separatePolicy) {
    const { validatePolicy } = await import(url("lib/techniques/policy.ts"));
    try {
      validatePolicy(POLICIES["MsT+selective"]);
      policies.push("MsT+selective");
    } catch { /* a checkout without keepAttention */ }
  }
  return {
    label,
    WebGPUDevice: webgpu.WebGPUDevice,
    MetaDevice: meta.MetaDevice,
    buildModel: (dev, cfg, policy, seed) =>
      separatePolicy
        ? model.Model.build(dev, cfg, policy, { seed })
        : model.Model.build(dev, cfg, { seed, ...policy }),
    Trainer: trainer.Trainer,
    getPreset: presets.getPreset,
    makeBatches: data.makeBatches,
    policies,
  };
}

/**
 * The policies compared: standard, MsT + full recomputation (the paper's), and MsT + selective
 * recomputation (each block keeps its attention output, so the recomputation skips the
 * attention kernel; `keepAttention`).
 */
export const POLICIES = {
  standard: {},
  "MsT+checkpoint": { checkpoint: true, mst: { mlp: "auto", head: "auto" } },
  "MsT+selective": { checkpoint: true, keepAttention: true, mst: { mlp: "auto", head: "auto" } },
} as const;
type PolicyName = keyof typeof POLICIES;

/**
 * Dispatches, bytes and peak live bytes of one training step of `tree` at S, counted on its
 * meta device.
 */
async function countStep(
  tree: Tree,
  S: number,
  policy: PolicyName,
): Promise<{ dispatches: number; bytes: number; peak: number }> {
  let dispatches = 0;
  let bytes = 0;
  const Base = tree.MetaDevice as unknown as new () => Record<string, unknown>;
  // deno-lint-ignore no-explicit-any
  const Counting: any = class extends Base {
    dispatch(call: {
      workgroups: number[];
      bindings: { bytes: number }[];
      textures?: { bytes: number }[];
    }) {
      (Base.prototype.dispatch as (c: unknown) => void).call(this, call);
      if (call.workgroups.some((w) => w === 0)) return;
      dispatches++;
      for (const t of call.bindings) bytes += t.bytes;
      for (const t of call.textures ?? []) bytes += t.bytes;
    }
    copy(src: unknown, so: number, dst: unknown, dO: number, count: number) {
      (Base.prototype.copy as (...a: unknown[]) => void).call(this, src, so, dst, dO, count);
      bytes += 8 * count;
    }
    stageTexture(t: { bytes: number }, rows: number) {
      bytes += 2 * t.bytes;
      return (Base.prototype.stageTexture as (t: unknown, r: number) => unknown).call(
        this,
        t,
        rows,
      );
    }
  };
  const dev = new Counting();
  const cfg = tree.getPreset("llama3-tiny");
  const model = tree.buildModel(dev, cfg, POLICIES[policy], 1);
  const trainer = new tree.Trainer(dev, model);
  const batch = (await tree.makeBatches("repeat", cfg, S, 1)).next();
  await trainer.step(batch); // first step: AdamW moments are created
  [dispatches, bytes] = [0, 0];
  (dev as MetaLike).allocator.resetPeak();
  await trainer.step(batch);
  const peak = (dev as MetaLike).allocator.peakBytes;
  model.dispose();
  return { dispatches, bytes, peak };
}

interface Stepper {
  tree: Tree;
  policy: PolicyName;
  ms: number[];
  losses: number[];
  dispatches: number;
  step(timed: boolean): Promise<void>;
  dispose(): void;
}

async function stepper(
  tree: Tree,
  dev: GpuDevice,
  S: number,
  policy: PolicyName,
): Promise<Stepper> {
  const cfg = tree.getPreset("llama3-tiny");
  const model = tree.buildModel(dev, cfg, POLICIES[policy], 1);
  const trainer = new tree.Trainer(dev, model);
  const data = await tree.makeBatches("repeat", cfg, S, 1);
  const s: Stepper = {
    tree,
    policy,
    ms: [],
    losses: [],
    dispatches: 0,
    async step(timed: boolean) {
      const d0 = dev.dispatches;
      const r = await trainer.step(data.next());
      s.losses.push(r.loss);
      if (!timed) return;
      s.ms.push(r.ms);
      s.dispatches += dev.dispatches - d0;
    },
    dispose: () => model.dispose(),
  };
  return s;
}

/** Options of {@link benchScaling}. */
export interface ScalingOptions {
  /** Sequence lengths. */
  seqs: number[];
  /** Timed steps per configuration (after one warm-up step per configuration at S=128). */
  steps: number;
  /** Our tree first, then optionally the base tree. */
  trees: Tree[];
  /** Profile one standard step per tree and S for the attention share. */
  profile: boolean;
}

const ATTENTION = /^attention_/;

/** Rows: per S, per tree, both policies; the MsT / standard ratio; ours / base speed-ups. */
export async function benchScaling(
  log: (s: string) => void,
  opts: ScalingOptions,
): Promise<BenchRow[]> {
  const devs = await Promise.all(opts.trees.map((t) => t.WebGPUDevice.create()));
  const rows: BenchRow[] = [];
  try {
    // Warm-up at a short S: every pipeline compiles here, not in a timed (or a long) step.
    for (const policy of Object.keys(POLICIES) as PolicyName[]) {
      for (let i = 0; i < opts.trees.length; i++) {
        if (!opts.trees[i].policies.includes(policy)) continue;
        const s = await stepper(opts.trees[i], devs[i], 128, policy);
        await s.step(false);
        s.dispose();
      }
    }
    for (const S of opts.seqs) {
      log(`scaling: llama3-tiny S=${S}, ${opts.steps} interleaved timed steps per configuration`);
      const steppers: Stepper[] = [];
      for (const policy of Object.keys(POLICIES) as PolicyName[]) {
        for (let i = opts.trees.length - 1; i >= 0; i--) {
          if (!opts.trees[i].policies.includes(policy)) continue;
          steppers.push(await stepper(opts.trees[i], devs[i], S, policy));
        }
      }
      try {
        for (let k = 0; k < opts.steps; k++) for (const s of steppers) await s.step(true);
      } finally {
        for (const s of steppers) s.dispose();
      }
      const shares = new Map<string, number>();
      if (opts.profile) {
        for (const tree of opts.trees) {
          const { share, top } = await profiledStep(tree, S);
          shares.set(tree.label, share);
          log(`  profile, standard step (${tree.label}): ${top}`);
        }
      }
      rows.push(...await rowsAt(S, steppers, opts.trees, shares, log));
    }
  } finally {
    for (const d of devs) d.destroy();
  }
  return rows;
}

/**
 * One profiled standard step: the attention kernels' share of its GPU time, and its six
 * costliest kernels as text (`name ms (share)`, by GPU time).
 */
async function profiledStep(tree: Tree, S: number): Promise<{ share: number; top: string }> {
  const dev = await tree.WebGPUDevice.create({ profile: true });
  try {
    const s = await stepper(tree, dev, S, "standard");
    await s.step(false);
    dev.resetProfile();
    await s.step(false);
    s.dispose();
    const rep = dev.profileReport();
    const total = rep.reduce((a, p) => a + p.ms, 0);
    const attn = rep.filter((p) => ATTENTION.test(p.kernel)).reduce((a, p) => a + p.ms, 0);
    const top = [...rep].sort((a, b) => b.ms - a.ms).slice(0, 6)
      .map((p) => `${p.kernel} ${p.ms.toFixed(0)} ms (${(100 * p.ms / total).toFixed(0)}%)`)
      .join(", ");
    return { share: total > 0 ? attn / total : NaN, top };
  } finally {
    dev.destroy();
  }
}

async function rowsAt(
  S: number,
  steppers: Stepper[],
  trees: Tree[],
  shares: Map<string, number>,
  log: (s: string) => void,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const find = (tree: Tree, policy: PolicyName) =>
    steppers.find((s) => s.tree === tree && s.policy === policy)!;
  for (const tree of trees) {
    const std = find(tree, "standard");
    for (const policy of tree.policies) {
      const s = find(tree, policy);
      const ms = median(s.ms);
      const counted = await countStep(tree, S, s.policy);
      const notes = [
        `${(s.dispatches / s.ms.length).toFixed(0)} dispatches/step`,
        `${(counted.bytes / 2 ** 20).toFixed(0)} MiB bound/step`,
        `peak ${(counted.peak / 2 ** 20).toFixed(1)} MiB`,
      ];
      if (s !== std) {
        const dl = Math.max(...std.losses.map((l, i) => Math.abs(l - s.losses[i])));
        notes.push(
          `${(ms / median(std.ms)).toFixed(2)}× the standard step, max |Δloss| ${
            dl.toExponential(1)
          }`,
        );
      }
      if (s === std && shares.has(tree.label)) {
        notes.push(`attention ${(100 * shares.get(tree.label)!).toFixed(0)}% of GPU time`);
      }
      if (tree !== trees[0]) {
        // the base tree: ours / base speed-up of the same policy
        const ours = find(trees[0], s.policy);
        notes.push(`ours ${(ms / median(ours.ms)).toFixed(2)}× faster`);
      }
      const row: BenchRow = {
        name: `step ${s.policy} (${tree.label})`,
        shape: `llama3-tiny S=${S}`,
        ms,
        value: S / (ms / 1000),
        unit: "tokens/s",
        peer: null,
        ratio: null,
        note: notes.join(", "),
      };
      log(`  ${row.name}: ${row.ms.toFixed(0)} ms, ${row.note}`);
      rows.push(row);
    }
  }
  return rows;
}

/**
 * ALST's figures (Snowflake, "Arctic Long Sequence Training", arXiv 2506.13996; ingredients from
 * ArcticTraining's recipes, `lib/plan/alst.ts`) as ledger entries: Llama-3.1-8B's longest
 * trainable S on 1, 8 and 32 H100 80GB.
 *
 * The int32 limit of PyTorch/Triton kernels (2^31 elements per (S/K, d) tensor) is modelled only
 * where a source shows it: the 1-GPU recipe's comment "555000 # Triton Error [CUDA]: an illegal
 * memory access was encountered". The 8- and 32-GPU figures are planned from memory alone. The
 * ranks are counted under our runtime's profile: the HF profile is one GPU running transformers
 * and does not model ZeRO-3 + Ulysses + offload ranks; the ledger says so for each entry.
 */

import {
  ALST_PRESET,
  ALST_SETUPS,
  alstPolicy,
  type AlstSetup,
  TORCH_INT32_BINDING_BYTES,
} from "../plan/alst.ts";
import { describePolicy } from "../techniques/policy.ts";
import { formatBytes } from "../device/dtype.ts";
import {
  type ClaimDef,
  type ClaimSetup,
  type ComputeOut,
  maxSeqSensitivity,
  thousands,
} from "./types.ts";

const SOURCE = "ALST (arXiv 2506.13996)";
/** Tokens per rank the ALST searches resolve (the figures are given to 100K or coarser). */
const ALST_RESOLUTION = 1024;

function alstSetup(s: AlstSetup): ClaimSetup {
  return {
    preset: ALST_PRESET,
    dtype: "bf16",
    gpu: "h100-80g",
    budget: "80 GiB",
    overhead: "none",
    batch: 1,
    policy: describePolicy(alstPolicy(s)),
    gpus: s.parallel.gpus ?? 1,
  };
}

function alstEntry(s: AlstSetup, int32Cited: boolean): ClaimDef {
  const setup = alstSetup(s);
  const sp = s.parallel.sp ?? 1;
  const g = ALST_RESOLUTION * sp;
  const limits = int32Cited
    ? { maxStorageBufferBindingSize: TORCH_INT32_BINDING_BYTES }
    : undefined;
  return {
    id: `alst-${s.parallel.gpus}gpu`,
    source: SOURCE,
    location: `${s.name} Llama-8B longest sequence; recipe ArcticTraining ${s.recipe}` +
      ` (max_length ${thousands(s.recipeMaxLength)})`,
    claim: `Llama-3.1-8B max S on ${s.name}`,
    published: s.reported,
    publishedLabel: s.reported >= 1e6 ? `${s.reported / 1e6}M` : `${s.reported / 1e3}K`,
    unit: "tokens",
    setup,
    profiles: { maxSeq: "ours" },
    tolerance: {
      rel: 0.25,
      reason: "ALST reports rounded lengths it trained (its recipes set max_length " +
        `${thousands(s.recipeMaxLength)}), not a bisected limit`,
    },
    ifDiffers: "the profile: the ranks count our runtime's activations (the HF profile is not " +
      "modelled on ZeRO-3 + Ulysses + offload ranks, where ALST runs PyTorch + Liger), and host " +
      "memory (the offloaded checkpoints) is not budgeted",
    async compute(ctx): Promise<ComputeOut> {
      const policy = alstPolicy(s);
      const start = Math.max(g, Math.floor(s.reported * 0.5 / g) * g);
      const r = await ctx.maxSeq(setup, policy, {
        granularity: g,
        start,
        ...(limits ? { limits } : {}),
      });
      const sensitivity = await maxSeqSensitivity(ctx, setup, policy, r, g, limits);
      const notes: string[] = [];
      if (int32Cited) {
        const mem = await ctx.maxSeq(setup, policy, { granularity: g, start });
        notes.push(
          `limited by the modelled int32 binding (2^31 elements of one (S, d) tensor; the ` +
            `recipe's "555000 # Triton Error" shows it); memory alone gives ` +
            `${thousands(mem.maxSeq)} (stopped by ${mem.limitedBy}), because parameters, ` +
            `optimizer state and checkpoints are on the host and the device holds one layer's ` +
            `working set`,
        );
      }
      const host = r.plan ? r.plan.hostPeakBytes + (r.plan.rank?.hostBytes ?? 0) : 0;
      if (host > 0) {
        notes.push(
          `host per rank at ours: ${formatBytes(host)} (not budgeted; ×${
            Math.min(s.parallel.gpus ?? 1, 8)
          } ranks per node)`,
        );
      }
      return {
        ours: r.maxSeq,
        oursLabel: thousands(r.maxSeq),
        limitedBy: r.limitedBy,
        sensitivity,
        ourRuntime: null,
        notes,
      };
    },
  };
}

/** ALST's ledger entries (the int32 limit only on the 1-GPU setup, where its recipe shows it). */
export const ALST_CLAIMS: readonly ClaimDef[] = ALST_SETUPS.map((s) =>
  alstEntry(s, (s.parallel.gpus ?? 1) === 1)
);

/**
 * `plan … --export deepspeed --out ds.json`: a planned setup as a DeepSpeed config plus a short
 * launch note (`ds.launch.md` beside it) with the Hugging Face / ArcticTraining settings that
 * match. This is how a user who outgrows one machine runs the same plan at scale: DeepSpeed is
 * the distributed engine, the workbench only plans for it. DeepSpeed cannot run here (no CUDA
 * device), so the config is checked against a schema of DeepSpeed's documented keys
 * (`deepspeed_schema.ts`) before it is written.
 */

import type { FloatCounting } from "../device/dtype.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { normalizeParallel } from "../sharding/parallel_plan.ts";
import { TECHNIQUES } from "../techniques/registry.ts";
import type { DeepSpeedDraft } from "../techniques/technique.ts";
import { describePolicy, type MemoryPolicy, partChunks } from "../techniques/policy.ts";
import type { ResolvedChunks } from "../models/model.ts";
import { DEFAULT_ADAMW } from "../optim/adamw.ts";
import { validateAgainstSchema } from "./deepspeed_schema.ts";

/** What to export. */
export interface DeepSpeedExportInput {
  /** The model. */
  cfg: ModelConfig;
  /** The policy planned (its `parallel` gives N, ZeRO, SP and the offloads). */
  policy: MemoryPolicy;
  /** Float counting of the plan (bf16 → `bf16.enabled`, f16 → `fp16.enabled`). */
  dtype: FloatCounting;
  /** The planned S (the whole sequence, all SP ranks together). */
  seq: number;
  /** The M each chunked part ran in the plan (null: unchunked). */
  chunks?: ResolvedChunks;
}

/** The order of the config's top-level keys as written. */
const KEY_ORDER = [
  "train_micro_batch_size_per_gpu",
  "gradient_accumulation_steps",
  "train_batch_size",
  "optimizer",
  "gradient_clipping",
  "zero_optimization",
  "bf16",
  "fp16",
  "activation_checkpointing",
  "sequence_parallel_size",
  "seq_parallel_communication_data_type",
];

/**
 * The DeepSpeed config and the techniques' Hugging Face / ArcticTraining lines of a planned
 * setup: the common keys here, each technique's keys from its own `deepspeed` mapping.
 */
function draftExport(
  input: DeepSpeedExportInput,
): { config: Record<string, unknown>; lines: string[] } {
  const draft: DeepSpeedDraft = {
    config: {
      train_micro_batch_size_per_gpu: 1,
      gradient_accumulation_steps: 1,
      optimizer: {
        type: "AdamW",
        params: {
          lr: DEFAULT_ADAMW.lr,
          betas: [DEFAULT_ADAMW.beta1, DEFAULT_ADAMW.beta2],
          eps: DEFAULT_ADAMW.eps,
          weight_decay: DEFAULT_ADAMW.weightDecay,
        },
      },
      gradient_clipping: DEFAULT_ADAMW.maxGradNorm,
    },
    dtype: input.dtype,
    seq: input.seq,
    chunks: { mlp: input.chunks?.mlp ?? null, head: input.chunks?.head ?? null },
  };
  const lines: string[] = [];
  for (const t of TECHNIQUES) {
    const line = t.deepspeed?.(input.policy, draft);
    if (line) lines.push(line);
  }
  const rank = (k: string) => KEY_ORDER.includes(k) ? KEY_ORDER.indexOf(k) : KEY_ORDER.length;
  const config = Object.fromEntries(
    Object.entries(draft.config).sort(([a], [b]) => rank(a) - rank(b)),
  );
  return { config, lines };
}

/** The DeepSpeed config (a JSON object) of a planned setup. */
export function deepspeedConfig(input: DeepSpeedExportInput): Record<string, unknown> {
  return draftExport(input).config;
}

/**
 * Checks a DeepSpeed config: the schema of documented keys, plus DeepSpeed's cross-field
 * rules the export relies on (`train_batch_size` = micro-batch × accumulation × data-parallel
 * ranks, where Ulysses divides the world size by `sequence_parallel_size`; `offload_param`
 * only with stage 3; `offload_optimizer` not with stage 0; bf16 and fp16 not both).
 * Returns the problems (empty: valid).
 */
export function validateDeepSpeedConfig(config: unknown, gpus?: number): string[] {
  const errs = validateAgainstSchema(config);
  if (errs.length) return errs;
  // deno-lint-ignore no-explicit-any
  const c = config as Record<string, any>;
  const z = c.zero_optimization;
  if (z.offload_param && z.stage !== 3) errs.push("zero_optimization.offload_param needs stage 3");
  if (z.offload_optimizer && z.stage === 0) {
    errs.push("zero_optimization.offload_optimizer needs stage 1, 2 or 3");
  }
  if (c.bf16?.enabled && c.fp16?.enabled) errs.push("bf16 and fp16 cannot both be enabled");
  if (gpus !== undefined && c.train_batch_size !== undefined) {
    const sp = c.sequence_parallel_size ?? 1;
    const want = c.train_micro_batch_size_per_gpu * (c.gradient_accumulation_steps ?? 1) *
      (gpus / sp);
    if (c.train_batch_size !== want) {
      errs.push(
        `train_batch_size ${c.train_batch_size} ≠ micro-batch × accumulation × (GPUs / SP) = ${want}`,
      );
    }
  }
  return errs;
}

/** The launch note (Markdown) that goes beside the config. */
export function launchNote(input: DeepSpeedExportInput, configName: string): string {
  const p = normalizeParallel(input.policy.parallel ?? { gpus: 1 });
  const mlpSetting = partChunks(input.policy, "mlp");
  const perRank = input.seq / p.sp;
  const lines = [
    `# Launch note: ${input.cfg.name}, S = ${input.seq}, ${describePolicy(input.policy)}`,
    "",
    `Planned by \`deno task plan\` on the meta device (one rank's share: ${perRank} tokens per ` +
    `rank). DeepSpeed cannot run on the machine that wrote this; the config \`${configName}\` ` +
    "was checked against DeepSpeed's documented keys only.",
    "",
    "## DeepSpeed",
    "",
    `- \`${configName}\`: ZeRO stage ${p.zero}` +
    (p.offloadOptimizer ? ", optimizer offloaded to CPU (DeepSpeedCPUAdam)" : "") +
    (p.offloadParams ? ", parameters offloaded to CPU" : "") +
    `, micro-batch 1, ${input.dtype}` +
    (p.sp > 1 ? `, \`sequence_parallel_size: ${p.sp}\`` : "") + ".",
    `- Launch on ${p.gpus} GPU${p.gpus === 1 ? "" : "s"}: \`deepspeed --num_gpus ${
      Math.min(p.gpus, 8)
    }${p.gpus > 8 ? ` --num_nodes ${Math.ceil(p.gpus / 8)} --hostfile hostfile` : ""} ` +
    `train.py --deepspeed ${configName}\`, with ` +
    "`PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` (ALST's setting against fragmentation).",
    p.sp > 1
      ? `- Ulysses SP for Hugging Face models: \`UlyssesSPAttentionHF.register_with_transformers(` +
        `model_name_or_path, core_attn_implementation="flash_attention_2", ` +
        `sequence_parallel_size=${p.sp}, micro_batch_size=1, seq_length=${input.seq})\` and ` +
        "`UlyssesSPDataLoaderAdapter` around the data loader (DeepSpeed's ALST tutorial, " +
        "https://www.deepspeed.ai/tutorials/ulysses-alst-sequence-parallelism/). S must be a " +
        `multiple of ${p.sp}.`
      : "- No sequence parallelism (SP 1).",
    "",
    "## Hugging Face / ArcticTraining settings that match the plan",
    "",
    ...draftExport(input).lines,
    `- ArcticTraining YAML: \`micro_batch_size: 1\`, \`sequence_parallel_size: ${p.sp}\`, ` +
    `\`activation_checkpoint_cpu_offload: ${input.policy.offload === true}\`, ` +
    `\`tiled_mlp_compute: ${mlpSetting !== "off"}\`, \`deepspeed:\` the \`zero_optimization\` ` +
    `block of \`${configName}\`, \`data.max_length: ${input.seq}\`.`,
    "",
  ];
  return lines.join("\n");
}

/**
 * The export's two texts, validated: the config (JSON, as written to `ds.json`) and the launch
 * note naming `configName`. No file system: the web page offers them as downloads, and
 * `writeDeepSpeedExport` (`deepspeed_write.ts`) writes them.
 */
export function deepspeedExportTexts(
  input: DeepSpeedExportInput,
  configName: string,
): { config: string; note: string } {
  const config = deepspeedConfig(input);
  const gpus = normalizeParallel(input.policy.parallel ?? { gpus: 1 }).gpus;
  const errs = validateDeepSpeedConfig(config, gpus);
  if (errs.length) {
    throw new Error(`the DeepSpeed export is not valid:\n  ${errs.join("\n  ")}`);
  }
  return { config: JSON.stringify(config, null, 2) + "\n", note: launchNote(input, configName) };
}

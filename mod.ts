/**
 * MsT workbench: a scriptable research workbench for long-sequence LLM training memory
 * (Mini-Sequence Transformer, arXiv 2407.15892), in TypeScript on Deno and WebGPU.
 *
 * The public API: devices (WebGPU and the compute-free meta device) with exact memory
 * accounting, tensors, model presets and the model builder, the MsT wrappers, the trainer,
 * the memory planner, and experiments with vega-lite reports (also in the Jupyter Deno
 * kernel via `display`).
 *
 * @example Count the bytes of a computation without computing it
 * ```ts
 * import { add, MetaDevice } from "./mod.ts";
 *
 * const dev = new MetaDevice({ floats: "bf16" });
 * const x = dev.tensor([4096, 4096], { tag: "activations", name: "x" });
 * const r = dev.tensor([4096, 4096], { tag: "activations", name: "residual" });
 * const y = add(dev, x, r);
 * console.log(dev.allocator.stats().peakBytes); // 100663296 (three 32 MiB bf16 tensors)
 * ```
 *
 * @example Plan Llama3-8B's memory at 8K tokens in bf16, then find the longest S in 80 GiB
 * ```ts
 * import { getPreset, maxSequence, planStep } from "./mod.ts";
 *
 * const base = {
 *   cfg: getPreset("llama3-8b"),
 *   dtype: "bf16" as const,
 *   mst: { mlp: "auto" as const, head: "auto" as const },
 *   checkpoint: true,
 *   optimizerInBackward: true,
 *   budget: 80 * 2 ** 30,
 * };
 * const plan = await planStep({ ...base, seq: 8192 });
 * console.log(plan.peakBytes, plan.breakdown);
 * console.log((await maxSequence(base)).maxSeq);
 * ```
 *
 * @example Train a tiny Llama 3 on WebGPU with MsT and recomputation
 * ```ts
 * import { getPreset, Model, Trainer, WebGPUDevice } from "./mod.ts";
 *
 * const dev = await WebGPUDevice.create();
 * const model = Model.build(dev, getPreset("llama3-tiny"), {
 *   checkpoint: true,
 *   mst: { mlp: "auto", head: "auto" },
 * });
 * const trainer = new Trainer(dev, model);
 * const ids = Int32Array.from({ length: 257 }, (_, i) => (i * 37) % 2048);
 * const r = await trainer.step({ ids: ids.slice(0, 256), targets: ids.slice(1) });
 * console.log(r.loss, r.peakBytes, r.breakdown);
 * ```
 *
 * @example Run a kernel on WebGPU
 * ```ts
 * import { add, WebGPUDevice } from "./mod.ts";
 *
 * const dev = await WebGPUDevice.create();
 * const a = dev.upload([1, 2, 3], [3], { tag: "activations" });
 * const b = dev.upload([10, 20, 30], [3], { tag: "activations" });
 * console.log(await dev.read(add(dev, a, b))); // Float32Array [11, 22, 33]
 * ```
 * @module
 */

export * from "./lib/device/mod.ts";
export { add, addInPlace } from "./lib/ops/add.ts";
export type { Family, ModelConfig } from "./lib/models/config.ts";
export { getPreset, PRESET_NAMES } from "./lib/models/presets.ts";
export {
  parameterCount,
  type ParameterShape,
  parameterShapes,
  validateConfig,
} from "./lib/models/derived.ts";
export { type ConfigOverrides, resolveConfig } from "./lib/models/resolve.ts";
export {
  type Batch,
  type BuildOptions,
  type LossOptions,
  Model,
  type MstPolicy,
} from "./lib/models/model.ts";
export type { Forward, SeqLayer } from "./lib/nn/layer.ts";
export type { Parameter } from "./lib/nn/parameter.ts";
export type { Embedding } from "./lib/nn/embedding.ts";
export type { EmbeddingGradIndex } from "./lib/ops/embedding.ts";
export type { RMSNorm, RMSNormSaved } from "./lib/nn/rmsnorm.ts";
export type { HeadLoss } from "./lib/nn/lm_head_loss.ts";
export { checkpoint, Checkpointed, type CheckpointSaved } from "./lib/mst/checkpoint.ts";
export {
  MiniSequence,
  miniSequence,
  type MiniSequenceOptions,
  type MiniSequenceSaved,
} from "./lib/mst/mini_sequence.ts";
export { MiniSequenceHeadLoss, type MiniSequenceHeadSaved } from "./lib/mst/mini_sequence_head.ts";
export {
  type AutoChunkInput,
  chunkRanges,
  type Chunks,
  resolveChunks,
} from "./lib/mst/chunking.ts";
export { type StepResult, Trainer, type TrainerOptions } from "./lib/train/trainer.ts";
export { AdamW, type AdamWOptions, DEFAULT_ADAMW } from "./lib/train/adamw.ts";
export { type LoadedRun, loadRun, saveRun } from "./lib/train/run_io.ts";
export type { JsonValue } from "./lib/checkpoint/run_state.ts";
export {
  type MaxSeqResult,
  maxSequence,
  type Plan,
  type PlanInput,
  planStep,
} from "./lib/plan/planner.ts";
export {
  referenceLoss,
  type ReferenceOptions,
  type ReferenceResult,
  type RefParams,
} from "./lib/reference/model.ts";
export {
  defineExperiment,
  type Experiment,
  type ExperimentContext,
  type SweepOptions,
} from "./lib/experiments/define.ts";
export type { ConfigValue, ExperimentConfig } from "./lib/experiments/config.ts";
export { describeItem, type ProgressBar } from "./lib/experiments/progress.ts";
export type { Json, MetricRow, ReportTable, VegaLiteSpec } from "./lib/report/records.ts";
export { chartBundle, display, type MimeBundle } from "./lib/report/jupyter.ts";
export { renderSvg } from "./lib/report/render_svg.ts";

/**
 * MsT workbench: a scriptable research workbench for long-sequence LLM training memory
 * (Mini-Sequence Transformer, arXiv 2407.15892), in TypeScript on Deno and WebGPU.
 *
 * The public API: devices (WebGPU and the compute-free meta device) with exact memory
 * accounting, tensors, model presets and the model builder, one memory policy type
 * (`MemoryPolicy`, the named `POLICIES`, `describePolicy`), the MsT wrappers, the trainer and
 * the step driver (`runSteps`: losses, times, peaks, tokens/s), batches (`makeBatches`), the
 * memory planner, and experiments with vega-lite reports — run from the command line or
 * in-process with `runExperiment`, and shown in the Jupyter Deno kernel with `display`,
 * `displayTable` and `displayFigures` (see `notebooks/`). Experiments need nothing but this module.
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
 * @example Compare named memory policies on the meta device (no compute, memory only)
 * ```ts
 * import { describePolicy, getPreset, planStep, POLICIES } from "./mod.ts";
 *
 * const cfg = getPreset("llama3-8b");
 * for (const policy of [POLICIES.standard, POLICIES.checkpoint, POLICIES.mst]) {
 *   const p = await planStep({ cfg, policy, seq: 8192, dtype: "bf16", budget: Infinity });
 *   console.log(describePolicy(policy), p.peakBytes, p.peakPhase, p.phasePeaks, p.largestTag);
 * }
 * ```
 *
 * @example Plan Llama3-8B's memory at 8K tokens in bf16, then find the longest S in 80 GiB
 * ```ts
 * import { explainPlan, getPreset, maxSequence, planStep, POLICIES } from "./mod.ts";
 *
 * const base = {
 *   cfg: getPreset("llama3-8b"),
 *   policy: POLICIES.mstOib, // MsT + recomputation + optimizer-in-backward
 *   dtype: "bf16" as const,
 *   budget: 80 * 2 ** 30,
 * };
 * const plan = await planStep({ ...base, seq: 8192 });
 * console.log(plan.peakBytes, plan.breakdown, explainPlan(plan).join("\n"));
 * console.log((await maxSequence(base)).maxSeq);
 * ```
 *
 * @example A 4-bit (NF4) base weight: bitsandbytes' storage, its bytes, on the meta device
 * ```ts
 * import { MetaDevice, Nf4Weight, nf4Bytes } from "./mod.ts";
 *
 * // Llama3-8B's gate_proj: 4 bits per code + 8 per 64 (absmax) + 32 per 64·256 + the offset.
 * console.log(nf4Bytes(14336, 4096)); // { total: 30291972, bitsPerParameter: 4.12695…, … }
 * const dev = new MetaDevice({ floats: "bf16" });
 * const w = Nf4Weight.alloc(dev, 14336, 4096, { name: "mlp.gate_proj.weight" });
 * console.log(w.bytes); // the same on WebGPU: codes and absmax as u32 words, f32 tables
 * w.dispose();
 * ```
 *
 * @example A LoRA layer over an NF4 base (QLoRA's building block), planned on the meta device
 * ```ts
 * import { LoraLinear, MetaDevice, Nf4Weight, parseLoraOptions, peftAdapterKey } from "./mod.ts";
 *
 * const o = parseLoraOptions("r=32,alpha=16,targets=all"); // { r: 32, alpha: 16, scaling: 0.5, … }
 * const dev = new MetaDevice({ floats: "bf16" });
 * const name = "model.layers.0.self_attn.q_proj";
 * const base = Nf4Weight.alloc(dev, 4096, 4096, { name: `${name}.weight` }); // frozen, no grad
 * const lora = LoraLinear.create(dev, name, base, { r: o.r, alpha: o.alpha, seed: 0 });
 * const x = dev.tensor([8192, 4096], { tag: "activations", name: "x" });
 * const { out, saved } = lora.forward(x); // saved: a view of x and u = s·(x·Aᵀ), (8192, 32)
 * console.log(saved.u.bytes, peftAdapterKey(name, "A"));
 * // 524288 "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
 * lora.backward(out, saved).dispose(); // gradients of A and B only
 * ```
 *
 * @example Train a tiny Llama 3 on WebGPU with MsT and recomputation, through the step driver
 * ```ts
 * import { getPreset, makeBatches, POLICIES, runSteps, WebGPUDevice } from "./mod.ts";
 *
 * const dev = await WebGPUDevice.create();
 * const cfg = getPreset("llama3-tiny");
 * const batches = await makeBatches("repeat", cfg, 256, 1);
 * const r = await runSteps(dev, cfg, POLICIES.mst, batches, { steps: 3 });
 * console.log(r.losses, r.peakBytes, r.breakdown, r.chunks);
 * console.log(r.tokensPerSec, r.timing); // median of the 2 steps after the warm-up
 * dev.destroy();
 * ```
 *
 * @example One step by hand: the model builder and the trainer under the driver
 * ```ts
 * import { getPreset, MetaDevice, Model, POLICIES, Trainer } from "./mod.ts";
 *
 * const dev = new MetaDevice();
 * const model = Model.build(dev, getPreset("llama3-tiny"), POLICIES.mst, { seed: 1 });
 * const trainer = new Trainer(dev, model);
 * const ids = Int32Array.from({ length: 257 }, (_, i) => (i * 37) % 2048);
 * const r = await trainer.step({ ids: ids.slice(0, 256), targets: ids.slice(1) });
 * console.log(r.peakBytes, r.peakPhase, model.resolvedChunks());
 * model.dispose();
 * ```
 *
 * @example A short experiment on the public API (`experiments/<name>.ts` default-exports it)
 * ```ts
 * import { defineExperiment, describePolicy, getPreset, makeBatches, runSteps } from "./mod.ts";
 *
 * const experiment = defineExperiment({
 *   name: "head-chunks",
 *   description: "llama3-tiny: peak memory and tokens/s against the LM head's M",
 *   defaults: { seq: 2048, chunks: [1, 2, 4, 8, 16], steps: 5 },
 *   quick: { seq: 512, chunks: [1, 4], steps: 3 },
 *   async run(ctx) {
 *     const { seq, chunks, steps } = ctx.config;
 *     const dev = await ctx.device();
 *     const cfg = getPreset("llama3-tiny");
 *     await ctx.sweep("M", chunks, async (M) => {
 *       const policy = { checkpoint: true, mst: { head: M } };
 *       const batches = await makeBatches("repeat", cfg, seq, 1);
 *       const r = await runSteps(dev, cfg, policy, batches, { steps, init: { seed: 1 } });
 *       ctx.record({
 *         kind: "head-chunks",
 *         policy: describePolicy(policy),
 *         M: r.chunks.head, // the M actually run (capped at S)
 *         peakBytes: r.peakBytes,
 *         peakPhase: r.peakPhase,
 *         tokensPerSec: r.tokensPerSec, // null on --device meta
 *       });
 *     });
 *   },
 * });
 * console.log(experiment.name); // run it with: deno task exp head-chunks --quick
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
export { add, addInPlace, scaleInPlace } from "./lib/ops/add.ts";
export type { Family, ModelConfig } from "./lib/config/model_config.ts";
export { getPreset, PRESET_NAMES } from "./lib/config/presets.ts";
export {
  parameterCount,
  type ParameterShape,
  parameterShapes,
  validateConfig,
} from "./lib/config/derived.ts";
export { type ConfigOverrides, resolveConfig } from "./lib/config/resolve.ts";
export {
  type Batch,
  type InitOptions,
  type LossOptions,
  Model,
  type ResolvedChunks,
} from "./lib/models/model.ts";
export {
  describePolicy,
  type MemoryPolicy,
  type MstParts,
  type PartChunks,
  partChunks,
  POLICIES,
  policyByName,
  type PolicyName,
  validatePolicy,
} from "./lib/techniques/policy.ts";
export type { LoraPolicy } from "./lib/techniques/memory_policy.ts";
export { type Forward, isKeepingLayer, type KeepingLayer, type SeqLayer } from "./lib/nn/layer.ts";
export type { Parameter } from "./lib/nn/parameter.ts";
export type { Embedding } from "./lib/nn/embedding.ts";
export type { EmbeddingGradIndex } from "./lib/ops/embedding.ts";
export type { RMSNorm, RMSNormSaved } from "./lib/nn/rmsnorm.ts";
export type { HeadLoss } from "./lib/nn/lm_head_loss.ts";
export {
  checkpoint,
  Checkpointed,
  type CheckpointOptions,
  type CheckpointSaved,
} from "./lib/mst/checkpoint.ts";
export {
  MiniSequence,
  miniSequence,
  type MiniSequenceOptions,
  type MiniSequenceSaved,
} from "./lib/mst/mini_sequence.ts";
export {
  type HeadSizing,
  MiniSequenceHeadLoss,
  type MiniSequenceHeadSaved,
} from "./lib/mst/mini_sequence_head.ts";
export {
  type AutoChunkInput,
  chunkRanges,
  type Chunks,
  resolveChunks,
} from "./lib/mst/chunking.ts";
export { type StepResult, Trainer, type TrainerOptions } from "./lib/train/trainer.ts";
export {
  type Batches,
  largestTag,
  median,
  runSteps,
  type RunStepsOptions,
  type RunStepsResult,
  type StepRecord,
  StepRunner,
  type TimingSpread,
} from "./lib/train/run_steps.ts";
export { type BatchSource, makeBatches } from "./lib/train/data_source.ts";
export { AdamW, type AdamWOptions, DEFAULT_ADAMW } from "./lib/optim/adamw.ts";
export { LossScaler, type LossScalerOptions, type ScalerUpdate } from "./lib/optim/loss_scaler.ts";
export { type LoadedRun, loadRun, saveRun } from "./lib/train/run_io.ts";
export type { JsonValue } from "./lib/checkpoint/run_state.ts";
export {
  ABSMAX_BLOCK,
  dequantizeNf4,
  dynamicMap,
  NF4_BLOCK,
  NF4_CODE,
  nf4BlockScales,
  type Nf4ByteCount,
  nf4Bytes,
  type Nf4Quantized,
  quantizeNf4,
} from "./lib/reference/nf4.ts";
export {
  nf4DeviceBytes,
  nf4Linear,
  nf4LinearInputGrad,
  type Nf4MatmulOptions,
  nf4StagesInput,
  Nf4Weight,
  type Nf4WeightOptions,
} from "./lib/ops/nf4_matmul.ts";
export {
  NF4_TARGETS,
  type Nf4QuantizeReport,
  type Nf4Target,
  nf4WeightNames,
  parseNf4Targets,
  quantizeCheckpoint,
  readNf4Weight,
} from "./lib/checkpoint/nf4_checkpoint.ts";
export {
  createLoraParameters,
  type LoraAdapter,
  loraInitA,
  LoraLinear,
  type LoraLinearOptions,
  type LoraSaved,
  loraScaling,
} from "./lib/nn/lora.ts";
export {
  formatLoraOptions,
  LORA_TARGETS,
  loraModuleNames,
  type LoraOptions,
  type LoraTarget,
  parseLoraOptions,
  peftTargetModules,
} from "./lib/nn/lora_options.ts";
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  type HostLoraAdapter,
  loadLoraAdapter,
  loadLoraLayers,
  type LoraAdapterConfig,
  type LoraAdapterFile,
  parsePeftConfig,
  PEFT_PREFIX,
  peftAdapterKey,
  peftConfigJson,
  readLoraLayers,
  saveLoraAdapter,
  saveLoraLayers,
} from "./lib/checkpoint/peft_adapter.ts";
export {
  readSafetensors,
  type SafeTensor,
  type SafetensorsDtype,
  type SafetensorsFile,
  type TensorData,
  writeSafetensors,
} from "./lib/checkpoint/safetensors.ts";
export {
  FIXED_TAGS,
  fixedBytes,
  type MaxSeqResult,
  maxSequence,
  type Plan,
  type PlanFailure,
  type PlanInput,
  planStep,
  type RankInfo,
} from "./lib/plan/planner.ts";
export { isPartitioned, ZeroGathered, zeroHostBytes, ZeroRank } from "./lib/sharding/zero.ts";
export { allToAll, headsToSeq, seqToHeads } from "./lib/ops/all_to_all.ts";
export {
  ALST_ANCHOR_COLUMNS,
  ALST_BUDGET,
  ALST_PRESET,
  ALST_SETUPS,
  type AlstAnchor,
  alstAnchorRow,
  alstPolicy,
  type AlstSetup,
  type KernelIndex,
  planAlstAnchor,
  planLongest,
  TORCH_INT32_BINDING_BYTES,
} from "./lib/plan/alst.ts";
export {
  type DeviceTarget,
  type GpuProfile,
  GPUS,
  type OverheadName,
  type OverheadProfile,
  OVERHEADS,
  parseGpu,
  parseOverhead,
  resolveTarget,
} from "./lib/plan/gpus.ts";
export { ALL_CLAIMS, ledgerMarkdown, ledgerTable, runLedger } from "./lib/claims/ledger.ts";
export {
  MST_FAMILY_TERMS,
  MST_PAPER_POLICIES,
  MST_PAPER_TERMS,
  type PaperTerm,
  termLabel,
} from "./lib/claims/mst_paper.ts";
export {
  maxSeqOnGpu,
  type PlannedTerm,
  planTerm,
  profileOf,
  sameProfileRatio,
  type Term,
  termRatio,
} from "./lib/claims/like_for_like.ts";
export {
  type ClaimDef,
  type ClaimResult,
  type ClaimSetup,
  type ClaimStatus,
  type ComputeOut,
  LedgerContext,
  type Profile,
  type Sensitivity,
} from "./lib/claims/types.ts";
export {
  deepspeedConfig,
  type DeepSpeedExportInput,
  deepspeedExportTexts,
  launchNote,
  validateDeepSpeedConfig,
} from "./lib/plan/deepspeed_export.ts";
export { writeDeepSpeedExport } from "./lib/plan/deepspeed_write.ts";
export {
  DEEPSPEED_ZERO_DEFAULTS,
  describeParallel,
  isSingleDevice,
  type ParallelPlan,
  validateParallel,
  ZERO3_PREFETCH_LAYERS,
  type ZeroStage,
} from "./lib/sharding/parallel_plan.ts";
export {
  explainPlan,
  FIXED_DOMINATES_SHARE,
  fixedDominates,
  STEP_PHASES,
} from "./lib/plan/explain.ts";
export { type Framework, FRAMEWORKS, parseFramework } from "./lib/profiles/registry.ts";
export {
  type ExtraBytes,
  HF_EXTRAS,
  type HFExtraKind,
  type HFPlanFigures,
} from "./lib/profiles/hf/extras.ts";
export { CachingAllocatorModel, type CachingStats } from "./lib/profiles/hf/caching_allocator.ts";
export { parseDtype } from "./lib/cli/args.ts";
export {
  type ReferenceLora,
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
export type {
  ConfigDefault,
  ConfigOf,
  ConfigSpec,
  ExperimentConfig,
  ExperimentDefaults,
} from "./lib/experiments/config.ts";
export {
  bool,
  bytes,
  type BytesOptions,
  chunks,
  ConfigRule,
  type ConfigValue,
  dtype,
  int,
  ints,
  KeyRule,
  num,
  oneOf,
  preset,
  presets,
  type RangeOptions,
  type RuleOptions,
  someOf,
} from "./lib/config/rules.ts";
export { describeItem, type ProgressBar } from "./lib/experiments/progress.ts";
export { runExperiment, type RunOptions, type RunResult } from "./lib/experiments/run.ts";
export {
  breakdownRows,
  maxAbsDelta,
  maxOf,
  mib,
  ratio,
  round,
  stepsRow,
} from "./lib/experiments/figures.ts";
export {
  type PlanTarget,
  planTarget,
  trainAt,
  type TrainAtOptions,
} from "./lib/experiments/training.ts";
export { describeBytes } from "./lib/device/dtype.ts";
export { checkBudget, checkInteger, checkSeq, MAX_SEQ } from "./lib/util/validate.ts";
export {
  ROUND_ROBIN_COLUMNS,
  roundRobin,
  type RoundRobinPoint,
  type RoundRobinPolicy,
  roundRobinTable,
  roundsRow,
  type Spread,
  spreadOf,
  trainRoundRobin,
} from "./lib/experiments/throughput.ts";
export { experimentNames, loadExperiment } from "./lib/experiments/registry.ts";
export {
  loadWarning,
  readRunRecords,
  type RunLoad,
  type RunRecords,
  type RunSummary,
  runTableRows,
} from "./lib/report/records.ts";
export type { Json, MetricRow, ReportTable, VegaLiteSpec } from "./lib/report/json.ts";
export {
  chartBundle,
  display,
  displayFigures,
  displayTable,
  type MimeBundle,
  tableBundle,
  VEGA_LITE_MIME,
} from "./lib/report/jupyter.ts";
export { type StepTimeline, stepTimeline, timelineRows } from "./lib/experiments/timeline.ts";
export { renderSvg } from "./lib/report/render_svg.ts";
export {
  type BarsArgs,
  barsWithReference,
  type ChartBaseArgs,
  type ChartRecipe,
  chartSpec,
  type HelperName,
  lossCurves,
  type LossCurvesArgs,
  memoryTimeline,
  type MemoryTimelineArgs,
  metricVsSeq,
  type MetricVsSeqArgs,
  stackedPeak,
  type StackedPeakArgs,
} from "./lib/report/charts.ts";
export type { ValueFormat } from "./lib/report/chart_style.ts";
export {
  PHASE_COLORS,
  POLICY_COLORS,
  policyColor,
  SERIES_DASHES,
  SERIES_PALETTE,
  SERIES_SHAPES,
  seriesColors,
  TAG_COLORS,
  tagColor,
} from "./lib/report/palette.ts";
export { type ChartDef, chartFromRows, type ChartOptions } from "./lib/report/chart_defs.ts";

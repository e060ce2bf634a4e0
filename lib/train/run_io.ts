/**
 * Saving and resuming a training run: weights and AdamW moments as safetensors with
 * Hugging Face names, plus the step, the data position and the config (`lib/checkpoint`),
 * committed crash-safely into a checkpoint directory (`checkpoint_dir.ts`: the previous
 * checkpoint stays valid until the new one is complete). A resumed run continues
 * bit-for-bit: the same kernels run in the same order on the same weights, moments and data.
 */

import {
  cleanCheckpointDir,
  commitCheckpoint,
  loadCheckpoint,
  readCheckpointPointer,
} from "../checkpoint/checkpoint_dir.ts";
import type { JsonValue, RunState, TensorMap } from "../checkpoint/run_state.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../config/model_config.ts";
import { Model } from "../models/model.ts";
import type { MemoryPolicy } from "../techniques/policy.ts";
import { type HostLoraAdapter, saveLoraAdapter } from "../checkpoint/peft_adapter.ts";
import { peftTargetModules } from "../nn/lora_options.ts";
import { loraTargets } from "../techniques/lora.ts";
import type { Trainer } from "./trainer.ts";

/**
 * The run state of a trainer: weights, AdamW moments and step, the data position and
 * `extra` (read back from the device). Under LoRA only the trainable parameters (the adapters)
 * and their moments are saved, with the seed the frozen base was initialised from
 * (`extra.loraBaseSeed`): {@link runFromState} rebuilds the base from it (NF4 codes included,
 * deterministically), so a resumed run continues bit for bit.
 */
async function runState(
  trainer: Trainer,
  data: JsonValue,
  extra: { [key: string]: JsonValue } = {},
): Promise<RunState> {
  const { dev, model, optimizer } = trainer;
  const weights: TensorMap = new Map();
  const expAvg: TensorMap = new Map();
  const expAvgSq: TensorMap = new Map();
  const lora = model.policy.lora !== undefined;
  for (const p of model.params) {
    if (lora && p.frozen) continue; // the frozen base: rebuilt from the seed on resume
    const shape = [...p.shape];
    // Mixed precision saves the f32 master weights (the f16 working copies are rounded from them).
    weights.set(p.name, { shape, data: await dev.readF32(p.master ?? p.value) });
    expAvg.set(p.name, {
      shape,
      data: p.m ? await dev.readF32(p.m) : new Float32Array(p.value.size),
    });
    expAvgSq.set(p.name, {
      shape,
      data: p.v ? await dev.readF32(p.v) : new Float32Array(p.value.size),
    });
  }
  // rng: nothing random is drawn while training (the initialization is seeded and
  // replaced by the saved weights; the data order is part of the data position)
  const scaler = trainer.scaler;
  const lossScaler = scaler
    ? { scale: scaler.scale, cleanSteps: scaler.cleanSteps, skippedSteps: scaler.skippedSteps }
    : null;
  return {
    model: weights,
    optimizer: { step: optimizer.step, expAvg, expAvgSq },
    info: {
      step: optimizer.step,
      data,
      rng: null,
      config: model.cfg,
      extra: {
        ...extra,
        ...(lossScaler ? { lossScaler } : {}),
        ...(lora ? { loraBaseSeed: model.seed } : {}),
      },
    },
  };
}

/**
 * Saves the model, the optimizer and the run's position as the checkpoint of `dir`
 * (crash-safe, replacing the previous checkpoint once the new one is complete).
 * @returns the step directory holding the checkpoint.
 */
export async function saveRun(
  dir: string,
  trainer: Trainer,
  data: JsonValue,
  extra: { [key: string]: JsonValue } = {},
): Promise<string> {
  const state = await runState(trainer, data, extra);
  const target = await commitCheckpoint(dir, state);
  const lora = trainer.model.policy.lora;
  if (lora) await savePeftAdapter(target, trainer.model, state);
  return target;
}

/**
 * The adapters of a LoRA run in PEFT's layout (`adapter_model.safetensors`,
 * `adapter_config.json`) beside the committed checkpoint: an export for PEFT (resuming reads the
 * run state).
 */
async function savePeftAdapter(dir: string, model: Model, state: RunState): Promise<void> {
  const lora = model.policy.lora!;
  const adapters = new Map<string, HostLoraAdapter>();
  for (const [name, t] of state.model) {
    const m = /^(.*)\.lora_([AB])\.weight$/.exec(name);
    if (!m) continue;
    const entry = adapters.get(m[1]) ?? ({} as HostLoraAdapter);
    const host = { shape: [t.shape[0], t.shape[1]] as [number, number], data: t.data };
    if (m[2] === "A") entry.a = host;
    else entry.b = host;
    adapters.set(m[1], entry);
  }
  await saveLoraAdapter(dir, {
    r: lora.r,
    loraAlpha: lora.alpha,
    loraDropout: 0,
    targetModules: peftTargetModules(loraTargets(lora)),
    useRslora: lora.rslora === true,
    baseModelNameOrPath: null,
  }, adapters);
}

/** A run loaded from a directory, ready to continue. */
export interface LoadedRun {
  /** Model configuration saved with the run. */
  cfg: ModelConfig;
  /** The model, built on the device with the saved weights. */
  model: Model;
  /** Optimizer steps completed. */
  step: number;
  /** Data stream position, as saved. */
  data: JsonValue;
  /** Anything else the trainer saved (`{}` when none). */
  extra: { [key: string]: JsonValue };
  /**
   * Put the saved moments and step into a trainer built on `model`, and the saved loss-scaler
   * state (scale, clean-step count, skipped steps) when both runs are mixed precision.
   * @returns what happened to the loss scaler: `"restored"`, `"reset"` (an f16 trainer resumed
   *   from an f32 run: its scaler starts at its initial scale), `"dropped"` (an f32 trainer
   *   resumed from an f16 run: f32 needs no scaler) or `"none"` (neither run has one).
   */
  restoreOptimizer(trainer: Trainer): "restored" | "reset" | "dropped" | "none";
}

/**
 * Loads the checkpoint of `dir` onto `dev` with the given policy (MsT and recomputation may
 * differ from the saved run's).
 */
export async function loadRun(
  dev: Device,
  dir: string,
  policy: MemoryPolicy = {},
): Promise<LoadedRun> {
  return runFromState(dev, await loadCheckpoint(dir), policy);
}

/** {@link loadRun} for a run state already read with `loadCheckpoint`. */
export function runFromState(dev: Device, state: RunState, policy: MemoryPolicy = {}): LoadedRun {
  const cfg = state.info.config;
  const weights = new Map([...state.model].map(([k, v]) => [k, v.data]));
  const baseSeed = state.info.extra?.loraBaseSeed;
  const savedAdapters = [...weights.keys()].filter((k) => k.includes(".lora_"));
  if (savedAdapters.length > 0 && !policy.lora) {
    throw new Error(
      `the checkpoint is a LoRA run's (${savedAdapters.length} adapter tensors, no base): ` +
        "resume it with its --lora settings (or its saved policy: give no policy flags)",
    );
  }
  if (policy.lora && savedAdapters.length > 0 && typeof baseSeed !== "number") {
    throw new Error(
      "the LoRA checkpoint does not record the seed of its frozen base (extra.loraBaseSeed); " +
        "it cannot be resumed exactly",
    );
  }
  const model = Model.build(dev, cfg, policy, {
    weights,
    ...(typeof baseSeed === "number" ? { seed: baseSeed } : {}),
  });
  if (policy.lora && savedAdapters.length > 0) {
    const built = model.params.filter((p) => !p.frozen).map((p) => p.name).sort();
    const saved = [...savedAdapters].sort();
    if (built.join() !== saved.join()) {
      model.dispose();
      throw new Error(
        `--lora targets differ from the checkpoint's: it holds ${saved.length} adapter tensors ` +
          `(${saved[0]}, …), the policy makes ${built.length}; resume with the saved LoRA settings`,
      );
    }
  }
  return {
    cfg,
    model,
    step: state.info.step,
    data: state.info.data,
    extra: state.info.extra ?? {},
    restoreOptimizer(trainer: Trainer) {
      if (trainer.model !== model) {
        throw new Error("restoreOptimizer: trainer is for another model");
      }
      if (state.optimizer.step > 0) {
        for (const p of model.params) {
          if (p.frozen) continue; // LoRA's frozen base has no moments
          const m = state.optimizer.expAvg.get(p.name)!;
          const v = state.optimizer.expAvgSq.get(p.name)!;
          const o = { tag: "optimizer", dtype: "f32" } as const;
          p.m = dev.upload(m.data, p.shape, { ...o, name: `${p.name}.exp_avg` });
          p.v = dev.upload(v.data, p.shape, { ...o, name: `${p.name}.exp_avg_sq` });
        }
      }
      trainer.optimizer.step = state.optimizer.step;
      const saved = savedScalerState(state.info.extra?.lossScaler);
      if (!trainer.scaler) return saved ? "dropped" : "none";
      if (!saved) return "reset";
      trainer.scaler.scale = saved.scale;
      trainer.scaler.cleanSteps = saved.cleanSteps;
      trainer.scaler.skippedSteps = saved.skippedSteps;
      return "restored";
    },
  };
}

/**
 * Periodic checkpoints of one run into one directory: every `every` steps (when set) and at
 * the end. {@link CheckpointSaver.open} first removes what an interrupted save left there.
 */
export class CheckpointSaver {
  #lastStep: number | null;

  private constructor(
    /** The checkpoint directory. */
    readonly dir: string,
    /** Steps between checkpoints; null: only when {@link save} is called. */
    readonly every: number | null,
    lastStep: number | null,
    /** Names of the leftovers removed when the saver was opened. */
    readonly removed: string[],
  ) {
    this.#lastStep = lastStep;
  }

  /**
   * Prepares `dir` for saving.
   * @param resumedFrom the checkpoint directory the run was resumed from, if any: `dir` may
   *   hold a checkpoint only when it is that directory (a new run never replaces another
   *   run's checkpoint).
   * @throws Error when `dir` holds another run's checkpoint, saying what to do (and
   *   leaves the directory untouched).
   */
  static async open(
    dir: string,
    every: number | null,
    resumedFrom?: string,
  ): Promise<CheckpointSaver> {
    const pointer = await readCheckpointPointer(dir);
    if (pointer && (!resumedFrom || !(await sameDir(dir, resumedFrom)))) {
      throw new Error(
        `--save ${dir}: the directory holds a checkpoint at step ${pointer.step}; continue ` +
          `that run with --resume ${dir}, or save into a new directory`,
      );
    }
    const removed = await cleanCheckpointDir(dir);
    return new CheckpointSaver(dir, every, pointer?.step ?? null, removed);
  }

  /** Step of the checkpoint committed in {@link dir} (null: none yet). */
  get savedStep(): number | null {
    return this.#lastStep;
  }

  /** True when a checkpoint is due after optimizer step `step`. */
  due(step: number): boolean {
    return this.every !== null && step % this.every === 0 && step !== this.#lastStep;
  }

  /**
   * Commits a checkpoint of `trainer` unless one at its step is already committed.
   * @returns the step directory, or null when nothing had to be written.
   */
  async save(
    trainer: Trainer,
    data: JsonValue,
    extra: { [key: string]: JsonValue },
  ): Promise<string | null> {
    const step = trainer.optimizer.step;
    if (step === this.#lastStep) return null;
    const path = await saveRun(this.dir, trainer, data, extra);
    this.#lastStep = step;
    return path;
  }
}

/** Whether two paths name the same directory (after resolving links). */
async function sameDir(a: string, b: string): Promise<boolean> {
  try {
    return (await Deno.realPath(a)) === (await Deno.realPath(b));
  } catch {
    return false;
  }
}

/** The loss-scaler state saved in a run's `extra.lossScaler`, checked; null when absent. */
function savedScalerState(
  value: JsonValue | undefined,
): { scale: number; cleanSteps: number; skippedSteps: number } | null {
  if (value === undefined || value === null) return null;
  const o = value as { [key: string]: JsonValue };
  const { scale, cleanSteps, skippedSteps } = o;
  if (
    typeof scale !== "number" || !(scale > 0) || typeof cleanSteps !== "number" ||
    !Number.isInteger(cleanSteps) || cleanSteps < 0 || typeof skippedSteps !== "number" ||
    !Number.isInteger(skippedSteps) || skippedSteps < 0
  ) {
    throw new Error(
      `state.json: extra.lossScaler must be {scale > 0, cleanSteps >= 0, skippedSteps >= 0}, ` +
        `got ${JSON.stringify(value)}; the checkpoint is damaged: resume from another one`,
    );
  }
  return { scale, cleanSteps, skippedSteps };
}

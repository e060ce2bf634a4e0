/**
 * Saving and resuming a training run: weights and AdamW moments as safetensors with
 * Hugging Face names, plus the step, the data position and the config (`lib/checkpoint`).
 * A resumed run continues bit-for-bit: the same kernels run in the same order on the same
 * weights, moments and data.
 */

import {
  type JsonValue,
  loadRunState,
  type RunState,
  saveRunState,
  type TensorMap,
} from "../checkpoint/run_state.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../models/config.ts";
import { Model } from "../models/model.ts";
import type { MemoryPolicy } from "../models/policy.ts";
import type { Trainer } from "./trainer.ts";

/** Saves the model, the optimizer and the run's position into `dir`. */
export async function saveRun(
  dir: string,
  trainer: Trainer,
  data: JsonValue,
  extra: { [key: string]: JsonValue } = {},
): Promise<void> {
  const { dev, model, optimizer } = trainer;
  const weights: TensorMap = new Map();
  const expAvg: TensorMap = new Map();
  const expAvgSq: TensorMap = new Map();
  for (const p of model.params) {
    const shape = [...p.shape];
    weights.set(p.name, { shape, data: await dev.readF32(p.value) });
    expAvg.set(p.name, {
      shape,
      data: p.m ? await dev.readF32(p.m) : new Float32Array(p.value.size),
    });
    expAvgSq.set(p.name, {
      shape,
      data: p.v ? await dev.readF32(p.v) : new Float32Array(p.value.size),
    });
  }
  await saveRunState(dir, {
    model: weights,
    optimizer: { step: optimizer.step, expAvg, expAvgSq },
    info: { step: optimizer.step, data, rng: null, config: model.cfg, extra },
  });
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
  /** Put the saved moments and step into a trainer built on `model`. */
  restoreOptimizer(trainer: Trainer): void;
}

/** Loads `dir` onto `dev` with the given policy (MsT and recomputation may differ). */
export async function loadRun(
  dev: Device,
  dir: string,
  policy: MemoryPolicy = {},
): Promise<LoadedRun> {
  return runFromState(dev, await loadRunState(dir), policy);
}

/** {@link loadRun} for a run state already read with `loadRunState`. */
export function runFromState(dev: Device, state: RunState, policy: MemoryPolicy = {}): LoadedRun {
  const cfg = state.info.config;
  const weights = new Map([...state.model].map(([k, v]) => [k, v.data]));
  const model = Model.build(dev, cfg, policy, { weights });
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
          const m = state.optimizer.expAvg.get(p.name)!;
          const v = state.optimizer.expAvgSq.get(p.name)!;
          p.m = dev.upload(m.data, p.shape, { tag: "optimizer", name: `${p.name}.exp_avg` });
          p.v = dev.upload(v.data, p.shape, { tag: "optimizer", name: `${p.name}.exp_avg_sq` });
        }
      }
      trainer.optimizer.step = state.optimizer.step;
    },
  };
}

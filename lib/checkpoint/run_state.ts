/**
 * Saving and loading a training run directory, so a run resumes exactly.
 *
 * | file | contents |
 * |---|---|
 * | `model.safetensors` | weights, Hugging Face names and shapes (`parameterShapes`), F32; metadata `format: pt`, `step` |
 * | `optimizer.safetensors` | AdamW moments `<name>.exp_avg` and `<name>.exp_avg_sq`, F32; metadata `step` |
 * | `state.json` | `{format, step, data, rng, config, extra}` (data stream and RNG states, model config) |
 *
 * Each file is written atomically (temporary name, then rename), `state.json` last: it is
 * the commit point. Loading checks that the three files agree on the step (a mismatch
 * means a save was interrupted), that the weights match the parameter list of the saved
 * config, and that the optimizer has both moments of every weight with its shape.
 *
 * Tensors are plain host maps (`name → {shape, data: Float32Array}`); the model code
 * converts from and to device tensors.
 */

import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ModelConfig } from "../config/model_config.ts";
import { parameterShapes } from "../config/derived.ts";
import { readSafetensors, writeFileAtomic, writeSafetensors } from "./safetensors.ts";

/** A host tensor. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Tensors by name. */
export type TensorMap = Map<string, HostTensor>;

/** A JSON value (what `state.json` can hold). */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** AdamW state: first and second moments per parameter name, and the step count. */
export interface OptimizerState {
  step: number;
  expAvg: TensorMap;
  expAvgSq: TensorMap;
}

/** The JSON part of a run. */
export interface RunInfo {
  /** Optimizer steps completed. */
  step: number;
  /** Data stream position (e.g. `WindowStream.state()`). */
  data: JsonValue;
  /** RNG state of the run (whatever the trainer's generator saves). */
  rng: JsonValue;
  /** Model configuration. */
  config: ModelConfig;
  /** Anything else the trainer wants back (schedule, loss history, …). */
  extra?: { [key: string]: JsonValue };
}

/** Everything in a run directory. */
export interface RunState {
  model: TensorMap;
  optimizer: OptimizerState;
  info: RunInfo;
}

/** `state.json` format tag. */
const RUN_STATE_FORMAT = "mst-run-state-v1";

/** File names inside a run directory. */
export const RUN_FILES = {
  model: "model.safetensors",
  optimizer: "optimizer.safetensors",
  state: "state.json",
} as const;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Checks that `model` holds exactly the parameters of `config` with their shapes. */
function checkModel(model: TensorMap, info: RunInfo, where: string): void {
  const config = info.config;
  const expected = parameterShapes(config);
  const problems: string[] = [];
  if (typeof info.extra?.loraBaseSeed === "number") {
    checkAdapters(model, config, expected, where);
    return;
  }
  for (const p of expected) {
    const t = model.get(p.name);
    if (!t) problems.push(`missing ${p.name} ${JSON.stringify(p.shape)}`);
    else if (!sameShape(t.shape, p.shape)) {
      problems.push(
        `${p.name} has shape ${JSON.stringify(t.shape)}, config says ${JSON.stringify(p.shape)}`,
      );
    } else if (t.data.length !== p.shape.reduce((a, b) => a * b, 1)) {
      problems.push(`${p.name} has ${t.data.length} values for shape ${JSON.stringify(p.shape)}`);
    }
  }
  const names = new Set(expected.map((p) => p.name));
  for (const name of model.keys()) if (!names.has(name)) problems.push(`unexpected tensor ${name}`);
  if (problems.length > 0) {
    throw new Error(
      `${where}: weights do not match config "${config.name}":\n  - ${
        problems.slice(0, 10).join("\n  - ")
      }${problems.length > 10 ? `\n  - … ${problems.length - 10} more` : ""}`,
    );
  }
}

/**
 * A LoRA run's weights (its base is rebuilt from `extra.loraBaseSeed`): only adapters
 * `<module>.lora_A.weight` (r, in) and `<module>.lora_B.weight` (out, r), in pairs, of the
 * config's 2-D weights `<module>.weight`.
 */
function checkAdapters(
  model: TensorMap,
  config: ModelConfig,
  expected: { name: string; shape: readonly number[] }[],
  where: string,
): void {
  const bases = new Map(expected.map((p) => [p.name, p.shape]));
  const problems: string[] = [];
  if (model.size === 0) problems.push("no adapter tensors");
  for (const [name, t] of model) {
    const m = /^(.*)\.lora_([AB])\.weight$/.exec(name);
    const base = m ? bases.get(`${m[1]}.weight`) : undefined;
    if (!m || !base || base.length !== 2) {
      problems.push(`unexpected tensor ${name} (a LoRA run holds only adapters of 2-D weights)`);
      continue;
    }
    const other = model.get(`${m[1]}.lora_${m[2] === "A" ? "B" : "A"}.weight`);
    if (!other) problems.push(`${name} without its pair`);
    const r = m[2] === "A" ? t.shape[0] : t.shape[1];
    const want = m[2] === "A" ? [r, base[1]] : [base[0], r];
    if (t.shape.length !== 2 || !sameShape(t.shape, want) || t.data.length !== want[0] * want[1]) {
      problems.push(
        `${name} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(want)}`,
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `${where}: LoRA adapters do not match config "${config.name}":\n  - ${
        problems.slice(0, 10).join("\n  - ")
      }`,
    );
  }
}

/** Checks that both moments exist for every weight, with its shape. */
function checkOptimizer(opt: OptimizerState, model: TensorMap, where: string): void {
  const problems: string[] = [];
  for (const [kind, moments] of [["exp_avg", opt.expAvg], ["exp_avg_sq", opt.expAvgSq]] as const) {
    for (const [name, w] of model) {
      const m = moments.get(name);
      if (!m) problems.push(`missing ${name}.${kind}`);
      else if (!sameShape(m.shape, w.shape)) {
        problems.push(
          `${name}.${kind} has shape ${JSON.stringify(m.shape)}, weight ${JSON.stringify(w.shape)}`,
        );
      }
    }
    for (const name of moments.keys()) {
      if (!model.has(name)) problems.push(`${name}.${kind} has no weight`);
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `${where}: optimizer state does not match the weights:\n  - ${
        problems.slice(0, 10).join("\n  - ")
      }`,
    );
  }
}

/**
 * Saves a run into `dir` (created if needed), replacing an earlier save there.
 * @throws Error if the weights do not match `info.config`, the optimizer moments do not
 *   match the weights, or the optimizer step differs from `info.step`.
 */
export async function saveRunState(dir: string, state: RunState): Promise<void> {
  const { model, optimizer, info } = state;
  checkModel(model, info, `saveRunState(${dir})`);
  checkOptimizer(optimizer, model, `saveRunState(${dir})`);
  if (optimizer.step !== info.step) {
    throw new Error(
      `saveRunState(${dir}): optimizer step ${optimizer.step} differs from run step ${info.step}`,
    );
  }
  await mkdir(dir, { recursive: true });
  const step = String(info.step);
  await writeSafetensors(join(dir, RUN_FILES.model), model, { format: "pt", step });
  const opt = new Map<string, HostTensor>();
  for (const [name, m] of optimizer.expAvg) opt.set(`${name}.exp_avg`, m);
  for (const [name, v] of optimizer.expAvgSq) opt.set(`${name}.exp_avg_sq`, v);
  await writeSafetensors(join(dir, RUN_FILES.optimizer), opt, { step });
  const json = { format: RUN_STATE_FORMAT, ...info };
  await writeFileAtomic(join(dir, RUN_FILES.state), JSON.stringify(json, null, 2) + "\n");
}

function asF32Map(
  tensors: Map<string, { dtype: string; shape: number[]; data: unknown }>,
  file: string,
): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, t] of tensors) {
    if (t.dtype !== "F32" || !(t.data instanceof Float32Array)) {
      throw new Error(`${file}: tensor ${name} is ${t.dtype}, expected F32`);
    }
    out.set(name, { shape: t.shape, data: t.data });
  }
  return out;
}

/**
 * Loads a run saved by {@link saveRunState}.
 * @throws Error naming the file and the problem: missing file, corrupt safetensors, wrong
 *   `state.json` format, files from different steps (interrupted save), weights that do not
 *   match the config, or incomplete optimizer moments.
 */
export async function loadRunState(dir: string): Promise<RunState> {
  const statePath = join(dir, RUN_FILES.state);
  let text: string;
  try {
    text = await readFile(statePath, "utf8");
  } catch (e) {
    throw new Error(
      `loadRunState: cannot read ${statePath} (${(e as Error).message}); ` +
        `is ${dir} a run directory written by saveRunState?`,
    );
  }
  let parsed: RunInfo & { format?: string };
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`loadRunState: ${statePath} is not valid JSON (${(e as Error).message})`);
  }
  if (parsed.format !== RUN_STATE_FORMAT) {
    throw new Error(
      `loadRunState: ${statePath} has format ${
        JSON.stringify(parsed.format)
      }, expected "${RUN_STATE_FORMAT}"`,
    );
  }
  const { format: _format, ...info } = parsed;
  const modelPath = join(dir, RUN_FILES.model);
  const optPath = join(dir, RUN_FILES.optimizer);
  const modelFile = await readSafetensors(modelPath);
  const optFile = await readSafetensors(optPath);
  for (const [path, f] of [[modelPath, modelFile], [optPath, optFile]] as const) {
    if (f.metadata.step !== String(info.step)) {
      throw new Error(
        `loadRunState: ${path} is from step ${f.metadata.step}, ${statePath} from step ${info.step} ` +
          `(a save was interrupted; use an earlier checkpoint)`,
      );
    }
  }
  const model = asF32Map(modelFile.tensors, modelPath);
  checkModel(model, info, `loadRunState(${dir})`);
  const expAvg: TensorMap = new Map();
  const expAvgSq: TensorMap = new Map();
  for (const [key, t] of asF32Map(optFile.tensors, optPath)) {
    if (key.endsWith(".exp_avg_sq")) expAvgSq.set(key.slice(0, -".exp_avg_sq".length), t);
    else if (key.endsWith(".exp_avg")) expAvg.set(key.slice(0, -".exp_avg".length), t);
    else throw new Error(`loadRunState: ${optPath} has unexpected tensor ${key}`);
  }
  const optimizer = { step: info.step, expAvg, expAvgSq };
  checkOptimizer(optimizer, model, `loadRunState(${dir})`);
  return { model, optimizer, info };
}

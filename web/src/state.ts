/**
 * The planner form's state, and its two faces: the `deno task plan` argv it stands for (what
 * the page runs, and the "copy CLI command" text) and the URL query that reproduces it.
 * A new flag (e.g. a GPU profile) is one field here, one control in `main.ts`.
 */

import { getPreset, PRESET_NAMES } from "../../lib/config/presets.ts";
import type { ModelConfig } from "../../lib/config/model_config.ts";

/** Everything the planner form holds; strings as typed, so errors quote the input. */
export interface PlanState {
  preset: string;
  /** ModelConfig fields changed from the preset's (`--set key=value`), as typed. */
  set: Record<string, string>;
  seq: string;
  dtype: "f32" | "f16" | "bf16";
  /** Empty: no budget. */
  budget: string;
  checkpoint: boolean;
  /** "off", "auto" or an integer M. */
  mstMlp: string;
  mstHead: string;
  keepAttention: boolean;
  offloadCheckpoints: boolean;
  optimizerInBackward: boolean;
  framework: "ours" | "hf";
  /** Empty: one GPU, no parallel flags. */
  gpus: string;
  zero: string;
  sp: string;
  offloadOptimizer: boolean;
  offloadParams: boolean;
}

/** The page's first plan: the paper's Llama 3 8B setting. */
export const DEFAULT_STATE: PlanState = {
  preset: "llama3-8b",
  set: {},
  seq: "65536",
  dtype: "bf16",
  budget: "80GiB",
  checkpoint: true,
  mstMlp: "auto",
  mstHead: "auto",
  keepAttention: false,
  offloadCheckpoints: false,
  optimizerInBackward: false,
  framework: "ours",
  gpus: "",
  zero: "",
  sp: "",
  offloadOptimizer: false,
  offloadParams: false,
};

/** ModelConfig fields the form shows (every field but the name). */
export const CONFIG_FIELDS: readonly (keyof ModelConfig)[] = [
  "family",
  "vocabSize",
  "hidden",
  "intermediate",
  "layers",
  "heads",
  "kvHeads",
  "headDim",
  "ropeTheta",
  "rmsEps",
  "activation",
  "tieEmbeddings",
  "qkvBias",
  "embeddingScale",
  "normUnitOffset",
  "postNorms",
  "attnSoftcap",
  "finalSoftcap",
  "slidingWindow",
  "slidingWindowLayers",
  "attnScale",
];

/** The preset's value of a field, as the form shows it. */
export function presetValue(preset: string, key: keyof ModelConfig): string {
  if (!PRESET_NAMES.includes(preset)) return "";
  return String(getPreset(preset)[key]);
}

/** The flags after the preset name (without `--json`). */
export function stateArgv(s: PlanState): string[] {
  const a = [s.preset];
  for (const [k, v] of Object.entries(s.set)) a.push("--set", `${k}=${v}`);
  if (s.seq !== "") a.push("--seq", s.seq);
  a.push("--dtype", s.dtype);
  if (s.budget !== "") a.push("--budget", s.budget);
  if (s.checkpoint) a.push("--checkpoint");
  if (s.mstMlp !== "off") a.push("--mst-mlp", s.mstMlp);
  if (s.mstHead !== "off") a.push("--mst-head", s.mstHead);
  if (s.keepAttention) a.push("--keep-attention");
  if (s.offloadCheckpoints) a.push("--offload-checkpoints");
  if (s.optimizerInBackward) a.push("--optimizer-in-backward");
  if (s.framework !== "ours") a.push("--framework", s.framework);
  if (s.gpus !== "") a.push("--gpus", s.gpus);
  if (s.zero !== "") a.push("--zero", s.zero);
  if (s.sp !== "") a.push("--sp", s.sp);
  if (s.offloadOptimizer) a.push("--offload-optimizer");
  if (s.offloadParams) a.push("--offload-params");
  return a;
}

/** One argument for a POSIX shell (quoted unless plainly safe). */
function shellWord(w: string): string {
  return /^[A-Za-z0-9_./=:+-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`;
}

/** The equivalent command line. */
export function cliCommand(s: PlanState, extra: string[] = []): string {
  return ["deno", "task", "plan", ...stateArgv(s), ...extra].map(shellWord).join(" ");
}

const BOOLS = [
  ["checkpoint", "checkpoint"],
  ["keepAttention", "keep-attention"],
  ["offloadCheckpoints", "offload-checkpoints"],
  ["optimizerInBackward", "optimizer-in-backward"],
  ["offloadOptimizer", "offload-optimizer"],
  ["offloadParams", "offload-params"],
] as const;

const STRINGS = [
  ["seq", "seq"],
  ["dtype", "dtype"],
  ["budget", "budget"],
  ["mstMlp", "mst-mlp"],
  ["mstHead", "mst-head"],
  ["framework", "framework"],
  ["gpus", "gpus"],
  ["zero", "zero"],
  ["sp", "sp"],
] as const;

/** The URL query of a state: every field, flags named as on the command line. */
export function stateToQuery(s: PlanState): string {
  const q = new URLSearchParams();
  q.set("preset", s.preset);
  for (const [k, f] of STRINGS) q.set(f, s[k]);
  for (const [k, f] of BOOLS) q.set(f, s[k] ? "1" : "0");
  for (const [k, v] of Object.entries(s.set)) q.append("set", `${k}=${v}`);
  return q.toString();
}

/** The state of a URL query; fields it lacks keep their defaults. */
export function stateFromQuery(query: string): PlanState {
  const q = new URLSearchParams(query);
  const s: PlanState = { ...DEFAULT_STATE, set: {} };
  if (!q.has("preset")) return { ...DEFAULT_STATE, set: {} };
  s.preset = q.get("preset")!;
  const w = s as unknown as Record<string, string | boolean>;
  for (const [k, f] of STRINGS) if (q.has(f)) w[k] = q.get(f)!;
  for (const [k, f] of BOOLS) if (q.has(f)) w[k] = q.get(f) === "1";
  for (const item of q.getAll("set")) {
    const eq = item.indexOf("=");
    if (eq > 0) s.set[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return s;
}

/** The form control an error message is about, by the flag or config key it names. */
export function errorField(message: string, s: PlanState): string {
  const m = message.match(/^--set ([A-Za-z]+)=/) ?? message.match(/--set ([A-Za-z]+)=/);
  if (m) return `cfg-${m[1]}`;
  const flags: [RegExp, string][] = [
    [/^--seq\b|S = \d+ must be a multiple/, "seq"],
    [/^--dtype\b/, "dtype"],
    [/^--budget\b|--max-seq needs a finite --budget/, "budget"],
    [/^--mst-mlp\b/, "mstMlp"],
    [/^--mst-head\b/, "mstHead"],
    [/^--keep-attention\b/, "keepAttention"],
    [/^--offload-checkpoints\b/, "offloadCheckpoints"],
    [/^--optimizer-in-backward\b|optimizer-in-backward/, "optimizerInBackward"],
    [/^--framework\b|framework hf/, "framework"],
    [/^--gpus\b/, "gpus"],
    [/^--zero\b/, "zero"],
    [/^--sp\b|SP degree|\bK divides\b/, "sp"],
    [/^--offload-optimizer\b/, "offloadOptimizer"],
    [/^--offload-params\b/, "offloadParams"],
    [/unknown preset|preset name/, "preset"],
  ];
  for (const [re, f] of flags) if (re.test(message)) return f;
  if (s.budget !== "" && message.includes(`"${s.budget}"`)) return "budget";
  if (message.includes(`"${s.seq}"`)) return "seq";
  for (const k of CONFIG_FIELDS) if (new RegExp(`\\b${k}\\b`).test(message)) return `cfg-${k}`;
  return "form";
}

/**
 * The `--lora` option: `r=32,alpha=16,targets=all` and its variants, parsed by a pure function
 * ({@link parseLoraOptions}); not wired into the CLI yet.
 *
 * Grammar: comma-separated `key=value` items and flags.
 * - `r=<int ≥ 1>` (required): the rank;
 * - `alpha=<number>` (required): PEFT's `lora_alpha`;
 * - `targets=all` or `targets=<t>[,<t>…]`, t among q, k, v, o, gate, up, down (default all):
 *   names after `targets=` that hold no `=` continue the list, so `targets=q,v,r=8` works;
 * - `rslora` (or `rslora=true|false`): scaling alpha/√r instead of alpha/r;
 * - `dropout=0`: accepted for explicitness; any other dropout is refused (we train with 0).
 */

import { loraScaling } from "./lora.ts";

/** The seven linear layers of a decoder block LoRA can adapt, short name → module path. */
export const LORA_TARGETS = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
} as const;

/** A short target name. */
export type LoraTarget = keyof typeof LORA_TARGETS;

/** Parsed `--lora` settings. */
export interface LoraOptions {
  /** Rank. */
  r: number;
  /** lora_alpha. */
  alpha: number;
  /** Adapted layers, in {@link LORA_TARGETS} order. */
  targets: LoraTarget[];
  /** rsLoRA scaling. */
  rslora: boolean;
  /** s = alpha/r, or alpha/√r with rsLoRA. */
  scaling: number;
}

const TARGET_NAMES = Object.keys(LORA_TARGETS) as LoraTarget[];
const KEYS = ["r", "alpha", "targets", "rslora", "dropout"];

function isTarget(t: string): t is LoraTarget {
  return (TARGET_NAMES as string[]).includes(t);
}

/**
 * Parses a `--lora` value (see the module doc). Throws an error naming the bad key or value and
 * the accepted forms.
 */
export function parseLoraOptions(text: string): LoraOptions {
  const where = `--lora "${text}"`;
  const items = text.split(",").map((s) => s.trim());
  if (items.every((s) => s === "")) {
    throw new Error(`${where}: empty; give e.g. r=32,alpha=16,targets=all`);
  }
  const seen = new Set<string>();
  let r: number | undefined;
  let alpha: number | undefined;
  let targets: LoraTarget[] | undefined;
  let rslora = false;
  let inTargets = false;
  let allGiven = false;
  const number = (key: string, v: string): number => {
    const n = v.trim() === "" ? NaN : Number(v);
    if (!Number.isFinite(n)) throw new Error(`${where}: ${key}=${v} is not a number`);
    return n;
  };
  const addTarget = (t: string) => {
    if (t === "all" || allGiven) {
      if (targets!.length > 0) {
        throw new Error(`${where}: targets: "all" cannot be combined with names`);
      }
      targets!.push(...TARGET_NAMES);
      allGiven = true;
      return;
    }
    if (!isTarget(t)) {
      throw new Error(
        `${where}: targets: unknown layer "${t}"; use all or a subset of ${
          TARGET_NAMES.join(", ")
        }`,
      );
    }
    if (targets!.includes(t)) throw new Error(`${where}: targets: "${t}" given twice`);
    targets!.push(t);
  };
  for (const item of items) {
    if (item === "") throw new Error(`${where}: an empty item (two commas in a row?)`);
    const eq = item.indexOf("=");
    if (eq < 0) {
      if (inTargets && item !== "rslora") {
        addTarget(item);
        continue;
      }
      if (item === "rslora") {
        if (seen.has("rslora")) throw new Error(`${where}: key "rslora" given twice`);
        seen.add("rslora");
        rslora = true;
        inTargets = false;
        continue;
      }
      throw new Error(
        `${where}: "${item}" is not key=value; keys are ${
          KEYS.join(", ")
        } (rslora may stand alone)`,
      );
    }
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!KEYS.includes(key)) {
      throw new Error(`${where}: unknown key "${key}"; keys are ${KEYS.join(", ")}`);
    }
    if (seen.has(key)) throw new Error(`${where}: key "${key}" given twice`);
    seen.add(key);
    inTargets = false;
    switch (key) {
      case "r": {
        const n = number("r", value);
        if (!Number.isInteger(n) || n < 1) {
          throw new Error(`${where}: r=${value} must be a positive integer`);
        }
        r = n;
        break;
      }
      case "alpha":
        alpha = number("alpha", value);
        if (alpha <= 0) throw new Error(`${where}: alpha=${value} must be > 0`);
        break;
      case "targets":
        targets = [];
        inTargets = true;
        if (value === "") throw new Error(`${where}: targets= is empty; use all or e.g. q,v`);
        addTarget(value);
        break;
      case "rslora":
        if (value !== "true" && value !== "false") {
          throw new Error(`${where}: rslora=${value} must be true or false (or rslora alone)`);
        }
        rslora = value === "true";
        break;
      case "dropout":
        if (number("dropout", value) !== 0) {
          throw new Error(
            `${where}: dropout=${value}: only 0 is supported (LoRA dropout is not implemented)`,
          );
        }
        break;
    }
  }
  if (r === undefined) throw new Error(`${where}: key "r" is required (the rank, e.g. r=32)`);
  if (alpha === undefined) throw new Error(`${where}: key "alpha" is required (e.g. alpha=16)`);
  const chosen = targets ?? TARGET_NAMES;
  return {
    r,
    alpha,
    targets: TARGET_NAMES.filter((t) => chosen.includes(t)),
    rslora,
    scaling: loraScaling(r, alpha, rslora),
  };
}

/** The canonical text of `o` (parses back to the same options). */
export function formatLoraOptions(o: LoraOptions): string {
  const t = o.targets.length === TARGET_NAMES.length ? "all" : o.targets.join(",");
  return `r=${o.r},alpha=${o.alpha},targets=${t}${o.rslora ? ",rslora" : ""}`;
}

/** PEFT's `target_modules` for `targets`: `q_proj`, …, `down_proj`. */
export function peftTargetModules(targets: readonly LoraTarget[]): string[] {
  return targets.map((t) => LORA_TARGETS[t].split(".")[1]);
}

/** The adapted module names of a model of `layers` decoder blocks, block by block. */
export function loraModuleNames(layers: number, targets: readonly LoraTarget[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < layers; i++) {
    for (const t of targets) out.push(`model.layers.${i}.${LORA_TARGETS[t]}`);
  }
  return out;
}

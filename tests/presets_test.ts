/**
 * Presets: parameter counts against the published figures, parameter lists, validation,
 * overrides and the tiny variants' ratios.
 */

import { deepEqual, equal, ok, throws } from "@std/assert";
import {
  layerWindow,
  parameterCount,
  parameterShapes,
  shapeSize,
  validateConfig,
} from "../lib/config/derived.ts";
import { allPresets, getPreset, PRESET_NAMES } from "../lib/config/presets.ts";
import { resolveConfig } from "../lib/config/resolve.ts";

const PUBLIC_COUNTS: Record<string, number> = {
  "llama3-8b": 8.03e9,
  "llama2-7b": 6.74e9,
  "mistral-7b": 7.24e9,
  "qwen2-7b": 7.62e9,
  "gemma2-9b": 9.24e9,
  "gemma2-2b": 2.61e9,
  // meta-llama/Llama-3.3-70B-Instruct's model page: "70.6B params" (safetensors)
  "llama3.3-70b": 70.6e9,
};

Deno.test("parameter counts are within 0.5% of the published figures", () => {
  for (const [name, expected] of Object.entries(PUBLIC_COUNTS)) {
    const n = parameterCount(getPreset(name));
    const rel = Math.abs(n - expected) / expected;
    ok(
      rel < 0.005,
      `${name}: ${n} parameters vs published ${expected} (${(rel * 100).toFixed(2)}%)`,
    );
  }
});

Deno.test("parameterShapes sums to parameterCount and uses Hugging Face names", () => {
  for (const cfg of allPresets()) {
    const shapes = parameterShapes(cfg);
    const total = shapes.reduce((a, p) => a + shapeSize(p.shape), 0);
    equal(total, parameterCount(cfg), cfg.name);
    equal(new Set(shapes.map((p) => p.name)).size, shapes.length, `${cfg.name}: unique names`);
    equal(shapes[0].name, "model.embed_tokens.weight");
    equal(shapes.some((p) => p.name === "lm_head.weight"), !cfg.tieEmbeddings, cfg.name);
  }
  const gemma = parameterShapes(getPreset("gemma2-tiny"));
  const layer0 = gemma.filter((p) => p.name.startsWith("model.layers.0.")).map((p) => p.name);
  deepEqual(layer0, [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.pre_feedforward_layernorm.weight",
    "model.layers.0.post_feedforward_layernorm.weight",
  ]);
  // gemma2-tiny: H·hd = 128 ≠ d = 64, (out, in) convention.
  deepEqual(gemma[1].shape, [128, 64]);
  deepEqual(gemma.find((p) => p.name === "model.layers.0.self_attn.o_proj.weight")?.shape, [
    64,
    128,
  ]);
  const qwen = parameterShapes(getPreset("qwen2-7b"));
  deepEqual(qwen.find((p) => p.name === "model.layers.3.self_attn.k_proj.bias")?.shape, [512]);
  deepEqual(qwen.at(-1), { name: "lm_head.weight", shape: [152064, 3584] });
});

Deno.test("every preset validates; sliding windows per layer", () => {
  for (const cfg of allPresets()) validateConfig(cfg);
  const g = getPreset("gemma2-9b");
  deepEqual([0, 1, 2, 3].map((i) => layerWindow(g, i)), [4096, 0, 4096, 0]);
  const m = getPreset("mistral-tiny");
  deepEqual([0, 1].map((i) => layerWindow(m, i)), [32, 32]);
  equal(layerWindow(getPreset("llama3-8b"), 0), 0);
});

Deno.test("llama3.3-70b copies Llama-3.3-70B-Instruct's config.json", () => {
  const c = getPreset("llama3.3-70b");
  deepEqual(
    [c.hidden, c.intermediate, c.layers, c.heads, c.kvHeads, c.headDim, c.vocabSize],
    [8192, 28672, 80, 64, 8, 128, 128256],
  );
  deepEqual([c.ropeTheta, c.rmsEps, c.attnScale], [500000, 1e-5, 128 ** -0.5]);
  deepEqual([c.family, c.activation, c.tieEmbeddings, c.qkvBias], ["llama3", "silu", false, false]);
  // the same features as llama3-8b, which differs only in size
  const small = getPreset("llama3-8b");
  for (const k of Object.keys(c) as (keyof typeof c)[]) {
    if (["name", "hidden", "intermediate", "layers", "heads"].includes(k)) continue;
    equal(c[k], small[k], `llama3.3-70b.${k} as llama3-8b`);
  }
  equal(parameterCount(c), 70_553_706_496);
});

Deno.test("validateConfig lists the problems with fixes", () => {
  const cfg = { ...getPreset("llama3-tiny"), kvHeads: 3, headDim: 15 };
  throws(() => validateConfig(cfg), (e: Error) => {
    ok(e.message.includes("heads (4) must be divisible by kvHeads (3)"), e.message);
    ok(e.message.includes("headDim (15) must be even"), e.message);
    ok(e.message.includes("set headDim=16"), e.message);
    return true;
  });
});

Deno.test("tiny presets keep their family's features and I/d, V/d ratios", () => {
  const pairs: [string, string, number, number][] = [
    // tiny, full, I/d tolerance, V/d tolerance (relative)
    ["llama3-tiny", "llama3-8b", 0.02, 0.05],
    ["llama2-tiny", "llama2-7b", 0.02, 0.05],
    ["mistral-tiny", "mistral-7b", 0.02, 0.05],
    ["qwen2-tiny", "qwen2-7b", 0.02, 0.05],
    ["gemma2-tiny", "gemma2-9b", 0.02, 0.05],
  ];
  for (const [tinyName, fullName, iTol, vTol] of pairs) {
    const t = getPreset(tinyName);
    const f = getPreset(fullName);
    const rel = (a: number, b: number) => Math.abs(a - b) / b;
    const iRatio = rel(t.intermediate / t.hidden, f.intermediate / f.hidden);
    ok(iRatio < iTol, `${tinyName}: I/d off by ${iRatio}`);
    const vRatio = rel(t.vocabSize / t.hidden, f.vocabSize / f.hidden);
    ok(vRatio < vTol, `${tinyName}: V/d off by ${vRatio}`);
    for (
      const k of [
        "family",
        "activation",
        "tieEmbeddings",
        "qkvBias",
        "embeddingScale",
        "normUnitOffset",
        "postNorms",
        "attnSoftcap",
        "finalSoftcap",
        "slidingWindowLayers",
        "ropeTheta",
        "rmsEps",
      ] as const
    ) equal(t[k], f[k], `${tinyName}.${k}`);
    equal(t.slidingWindow > 0, f.slidingWindow > 0, `${tinyName}: sliding window`);
    ok(t.slidingWindow <= 64, `${tinyName}: window smaller than test sequences`);
    equal(t.attnScale, t.headDim ** -0.5, `${tinyName}.attnScale`);
  }
  const l3 = getPreset("llama3-tiny");
  deepEqual(
    [l3.hidden, l3.layers, l3.heads, l3.kvHeads, l3.intermediate, l3.vocabSize],
    [64, 2, 4, 2, 224, 2048],
  );
});

Deno.test("unknown preset lists the presets", () => {
  throws(() => resolveConfig("llama4-huge"), (e: Error) => {
    ok(e.message.includes(`unknown model preset "llama4-huge"`), e.message);
    for (const n of PRESET_NAMES) ok(e.message.includes(n), n);
    return true;
  });
});

Deno.test("overrides: YAML then --set, typed parsing, derived fields follow", () => {
  const cfg = resolveConfig("llama3-tiny", {
    yaml: "layers: 4\nslidingWindow: 16\nqkvBias: true\n",
    set: ["layers=3", "tieEmbeddings=true", "ropeTheta=1e4", "hidden=128"],
  });
  equal(cfg.layers, 3);
  equal(cfg.slidingWindow, 16);
  equal(cfg.qkvBias, true);
  equal(cfg.tieEmbeddings, true);
  equal(cfg.ropeTheta, 10000);
  equal(cfg.hidden, 128);
  equal(cfg.headDim, 32);
  equal(cfg.attnScale, 32 ** -0.5);
  // the registry is untouched
  equal(getPreset("llama3-tiny").layers, 2);
  // Gemma keeps its explicit head dim and scale when d changes
  const g = resolveConfig("gemma2-tiny", { set: ["hidden=96"] });
  equal(g.headDim, 32);
  equal(g.attnScale, 32 ** -0.5);
});

Deno.test("overrides: errors name the key and list valid keys with types", () => {
  const expectError = (fn: () => unknown, ...parts: string[]) =>
    throws(fn, (e: Error) => {
      for (const p of parts) ok(e.message.includes(p), `missing "${p}" in:\n${e.message}`);
      return true;
    });
  expectError(
    () => resolveConfig("llama3-tiny", { set: ["layer=3"] }),
    `unknown key "layer"`,
    "layers: integer",
    'activation: "silu"|"gelu_tanh"',
  );
  expectError(
    () => resolveConfig("llama3-tiny", { set: ["layers=2.5"] }),
    `key "layers" must be integer`,
    "valid keys",
  );
  expectError(
    () => resolveConfig("llama3-tiny", { set: ["qkvBias=yes"] }),
    `key "qkvBias" must be boolean`,
  );
  expectError(
    () => resolveConfig("llama3-tiny", { set: ["activation=relu"] }),
    `key "activation" must be "silu"|"gelu_tanh"`,
  );
  expectError(() => resolveConfig("llama3-tiny", { set: ["layers"] }), "expected key=value");
  expectError(
    () => resolveConfig("llama3-tiny", { yaml: "heads: four\n" }),
    "config YAML",
    `key "heads" must be integer`,
  );
  expectError(() => resolveConfig("llama3-tiny", { yaml: "bogus: 1\n" }), `unknown key "bogus"`);
  expectError(() => resolveConfig("llama3-tiny", { yaml: "- 1\n- 2\n" }), "must be a mapping");
  expectError(() => resolveConfig("llama3-tiny", { yaml: "a: [1\n" }), "does not parse");
  expectError(
    () => resolveConfig("llama3-tiny", { set: ["kvHeads=3"] }),
    "must be divisible by kvHeads (3)",
  );
});

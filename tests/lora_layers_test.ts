/**
 * LoRA inside the layers: SelfAttention (q, k, v, o; the fused k/v pass, biases) and the MLP
 * (gate, up, down; the fused GLU paths where an adapter allows them), and the Hugging Face
 * profile's subclasses, with frozen f32 or NF4 bases — forward and backward on WebGPU against the
 * f64 reference sublayers (lib/reference/model.ts, the NF4 base dequantised), on small odd
 * shapes; frozen bases get no gradient; meta = WebGPU for every allocation; the Ulysses path on
 * the meta device.
 */

import assert from "node:assert/strict";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import type { Tensor } from "../lib/device/tensor.ts";
import type { ModelConfig } from "../lib/config/model_config.ts";
import { getPreset } from "../lib/config/presets.ts";
import { type BaseWeight, createLoraParameters, type LoraAdapter } from "../lib/nn/lora.ts";
import { forwardOutput, recomputeSaved, type SeqLayer } from "../lib/nn/layer.ts";
import { MLP, type MLPProjection } from "../lib/nn/mlp.ts";
import { disposeAll, Parameter } from "../lib/nn/parameter.ts";
import { type AttentionProjection, SelfAttention } from "../lib/nn/self_attention.ts";
import { Nf4Weight } from "../lib/ops/nf4_matmul.ts";
import { AdamW } from "../lib/optim/adamw.ts";
import { HFMLP, HFSelfAttention } from "../lib/profiles/hf/layers.ts";
import * as ag from "../lib/reference/autograd.ts";
import { referenceAttention, referenceMlp } from "../lib/reference/model.ts";
import { dequantizeNf4, type Nf4Quantized, quantizeNf4 } from "../lib/reference/nf4.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";

const PRE = "model.layers.0.";
const SCALING = 16 / 3;

/** One layer case: which projections are adapted, the base kind, the profile. */
interface Case {
  kind: "attention" | "mlp";
  cfg: ModelConfig;
  S: number;
  r: number;
  targets: string[];
  base: "f32" | "nf4";
  hf?: boolean;
}

/** Small odd configs (H·hd ≠ d in the attention one, as in Gemma-2). */
const ATTN_CFG: ModelConfig = {
  ...getPreset("llama3-tiny"),
  hidden: 20,
  heads: 4,
  kvHeads: 2,
  headDim: 8,
  attnScale: 8 ** -0.5,
};
const MLP_CFG: ModelConfig = { ...getPreset("llama3-tiny"), hidden: 20, intermediate: 27 };
/** Shapes the texture matmuls take (d, I multiples of 4): the fused GLU paths run. */
const MLP_CFG4: ModelConfig = { ...getPreset("llama3-tiny"), hidden: 64, intermediate: 96 };

interface Host {
  /** Weights by module name (f32-representable f64; NF4 bases dequantised). */
  weights: Map<string, { shape: number[]; data: Float64Array; q?: Nf4Quantized }>;
  x: Float64Array;
  R: Float64Array;
}

function shapesOf(c: Case): [string, number[]][] {
  const { cfg } = c;
  if (c.kind === "mlp") {
    const [d, I] = [cfg.hidden, cfg.intermediate];
    return [["mlp.gate_proj", [I, d]], ["mlp.up_proj", [I, d]], ["mlp.down_proj", [d, I]]];
  }
  const [d, q, kv] = [cfg.hidden, cfg.heads * cfg.headDim, cfg.kvHeads * cfg.headDim];
  return [
    ["self_attn.q_proj", [q, d]],
    ["self_attn.k_proj", [kv, d]],
    ["self_attn.v_proj", [kv, d]],
    ["self_attn.o_proj", [d, q]],
  ];
}

const f32 = (a: Float64Array) => Float64Array.from(Float32Array.from(a));

function hostData(c: Case, seed: number): Host {
  const weights: Host["weights"] = new Map();
  let k = seed;
  for (const [m, [N, K]] of shapesOf(c)) {
    let data: Float64Array = f32(randomArray(N * K, ++k, 0.3));
    let q: Nf4Quantized | undefined;
    if (c.base === "nf4") {
      q = quantizeNf4(Float32Array.from(data), [N, K]);
      data = dequantizeNf4(q);
    }
    weights.set(`${PRE}${m}.weight`, { shape: [N, K], data, q });
    if (c.cfg.qkvBias && m !== "self_attn.o_proj" && c.kind === "attention") {
      weights.set(`${PRE}${m}.bias`, { shape: [N], data: f32(randomArray(N, ++k, 0.5)) });
    }
    if (c.targets.includes(m.split(".")[1].replace("_proj", ""))) {
      weights.set(`${PRE}${m}.lora_A.weight`, {
        shape: [c.r, K],
        data: f32(randomArray(c.r * K, ++k, 0.3)),
      });
      // B non-zero (PEFT starts it at zero), so dA and the adapter's dx term are not trivial
      weights.set(`${PRE}${m}.lora_B.weight`, {
        shape: [N, c.r],
        data: f32(randomArray(N * c.r, ++k, 0.3)),
      });
    }
  }
  const d = c.cfg.hidden;
  const outF = d;
  return { weights, x: f32(randomArray(c.S * d, ++k)), R: f32(randomArray(c.S * outF, ++k)) };
}

/** The layer on `dev` with the host's weights (frozen bases and biases; adapters trainable). */
function build(dev: Device, c: Case, h: Host) {
  const meta = dev.kind === "meta";
  const frozen: Parameter[] = [];
  const bases: Record<string, BaseWeight> = {};
  const biases: Record<string, Parameter> = {};
  const adapters: Record<string, LoraAdapter> = {};
  for (const [m, [N, K]] of shapesOf(c)) {
    const name = `${PRE}${m}`;
    const which = m.split(".")[1].replace("_proj", "");
    const w = h.weights.get(`${name}.weight`)!;
    if (c.base === "nf4") {
      bases[which] = meta
        ? Nf4Weight.alloc(dev, N, K, { name: `${name}.weight` })
        : Nf4Weight.upload(dev, w.q!, { name: `${name}.weight` });
    } else {
      const p = new Parameter(
        `${name}.weight`,
        meta
          ? dev.tensor([N, K], { tag: "weights", name: `${name}.weight` })
          : dev.upload(Float32Array.from(w.data), [N, K], {
            tag: "weights",
            name: `${name}.weight`,
          }),
      );
      p.frozen = true;
      frozen.push(p);
      bases[which] = p;
    }
    const b = h.weights.get(`${name}.bias`);
    if (b) {
      const p = new Parameter(
        `${name}.bias`,
        meta
          ? dev.tensor([N], { tag: "weights", name: `${name}.bias` })
          : dev.upload(Float32Array.from(b.data), [N], { tag: "weights", name: `${name}.bias` }),
      );
      p.frozen = true;
      frozen.push(p);
      biases[which] = p;
    }
    const A = h.weights.get(`${name}.lora_A.weight`);
    if (A) {
      const B = h.weights.get(`${name}.lora_B.weight`)!;
      const { a, b } = createLoraParameters(dev, name, { r: c.r, N, K }, {
        seed: 1,
        a: meta ? undefined : Float32Array.from(A.data),
        b: meta ? undefined : Float32Array.from(B.data),
      });
      adapters[which] = { a, b, scaling: SCALING };
    }
  }
  let layer: SeqLayer;
  if (c.kind === "attention") {
    const p = {
      q: bases.q,
      k: bases.k,
      v: bases.v,
      o: bases.o,
      qBias: biases.q,
      kBias: biases.k,
      vBias: biases.v,
      lora: adapters as Partial<Record<AttentionProjection, LoraAdapter>>,
    };
    layer = new (c.hf ? HFSelfAttention : SelfAttention)(dev, `${PRE}self_attn`, c.cfg, p, 0);
  } else {
    layer = new (c.hf ? HFMLP : MLP)(
      dev,
      `${PRE}mlp`,
      bases.gate,
      bases.up,
      bases.down,
      c.cfg.activation,
      adapters as Partial<Record<MLPProjection, LoraAdapter>>,
    );
  }
  const trainable = Object.values(adapters).flatMap((a) => [a.a, a.b]);
  const dispose = () => {
    for (const p of [...frozen, ...trainable]) p.dispose();
    for (const w of Object.values(bases)) if (w instanceof Nf4Weight) w.dispose();
  };
  return { layer, adapters, frozen, trainable, dispose };
}

/** The f64 reference: output, dx and every adapter gradient (by parameter name). */
function reference(c: Case, h: Host) {
  const vars = new Map<string, ag.Var>();
  for (const [name, w] of h.weights) {
    const [rows, cols] = w.shape.length === 1 ? [1, w.shape[0]] : w.shape;
    vars.set(name, ag.leaf(rows, cols, w.data));
  }
  const d = c.cfg.hidden;
  const x = ag.leaf(c.S, d, h.x);
  const y = c.kind === "attention"
    ? referenceAttention(c.cfg, vars, PRE, x, 0, { scaling: SCALING })
    : referenceMlp(c.cfg, vars, PRE, x, { scaling: SCALING });
  ag.backward(ag.sumAll(ag.mul(y, ag.leaf(c.S, d, h.R))));
  const grads = new Map<string, Float64Array>();
  for (const [name, v] of vars) if (name.includes(".lora_")) grads.set(name, v.grad!);
  return { y: y.data, dx: x.grad!, grads };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const CASES: Case[] = [
  { kind: "attention", cfg: ATTN_CFG, S: 7, r: 3, targets: ["q", "k", "v", "o"], base: "f32" },
  {
    kind: "attention",
    cfg: { ...ATTN_CFG, qkvBias: true },
    S: 9,
    r: 2,
    targets: ["q", "v"],
    base: "f32",
  },
  { kind: "attention", cfg: ATTN_CFG, S: 7, r: 3, targets: ["q", "k", "v", "o"], base: "nf4" },
  {
    kind: "attention",
    cfg: ATTN_CFG,
    S: 11,
    r: 4,
    targets: ["k", "o"],
    base: "f32",
    hf: true,
  },
  { kind: "attention", cfg: ATTN_CFG, S: 7, r: 3, targets: ["q", "o"], base: "nf4", hf: true },
  { kind: "mlp", cfg: MLP_CFG, S: 7, r: 3, targets: ["gate", "up", "down"], base: "f32" },
  { kind: "mlp", cfg: MLP_CFG, S: 5, r: 2, targets: ["up"], base: "f32" },
  { kind: "mlp", cfg: MLP_CFG, S: 7, r: 3, targets: ["gate", "up", "down"], base: "nf4" },
  { kind: "mlp", cfg: MLP_CFG4, S: 9, r: 4, targets: ["down"], base: "f32" },
  { kind: "mlp", cfg: MLP_CFG4, S: 9, r: 4, targets: ["gate", "down"], base: "f32", hf: true },
  { kind: "mlp", cfg: MLP_CFG, S: 7, r: 3, targets: ["gate", "up", "down"], base: "nf4", hf: true },
];

function label(c: Case): string {
  const shape = c.kind === "attention"
    ? `d=${c.cfg.hidden} H=${c.cfg.heads}/${c.cfg.kvHeads} hd=${c.cfg.headDim}${
      c.cfg.qkvBias ? " +bias" : ""
    }`
    : `d=${c.cfg.hidden} I=${c.cfg.intermediate}`;
  return `${c.hf ? "HF " : ""}${c.kind} S=${c.S} ${shape} r=${c.r} [${
    c.targets.join(",")
  }] ${c.base} base`;
}

/** Forward + backward with dy = R on `dev`; host copies of y, dx and the adapter gradients. */
async function run(dev: Device, c: Case, h: Host) {
  const b = build(dev, c, h);
  const d = c.cfg.hidden;
  const x = dev.upload(Float32Array.from(h.x), [c.S, d], { tag: "data", name: "x" });
  const dy = dev.upload(Float32Array.from(h.R), [c.S, d], { tag: "data", name: "dy" });
  const { out, saved } = b.layer.forward(x);
  const dx = b.layer.backward(dy, saved);
  const grads = new Map<string, Float32Array>();
  for (const p of b.trainable) grads.set(p.name, await dev.readF32(p.gradFor(dev)));
  const got = {
    y: await dev.readF32(out),
    dx: await dev.readF32(dx),
    grads,
    frozenGrads: b.frozen.filter((p) => p.grad !== null).map((p) => p.name),
  };
  for (const t of [out, dx, x, dy]) t.dispose();
  b.dispose();
  return got;
}

for (const [i, c] of CASES.entries()) {
  Deno.test(`LoRA layer vs the f64 reference: ${label(c)}`, gpuTest, async () => {
    const dev = await testDevice();
    const h = hostData(c, 1000 * i);
    const got = await run(dev, c, h);
    const want = reference(c, h);
    // NF4: the base is the dequantised weight on both sides; f32 accumulation on the GPU
    const tol = { atol: 2e-5, rtol: 2e-5 };
    assertAllClose(got.y, want.y, tol, "y");
    assertAllClose(got.dx, want.dx, tol, "dx");
    assert.deepEqual([...got.grads.keys()].sort(), [...want.grads.keys()].sort());
    let worst = 0;
    for (const [name, g] of want.grads) {
      assertAllClose(got.grads.get(name)!, g, tol, name);
      worst = Math.max(worst, maxAbs(got.grads.get(name)!, g));
    }
    assert.deepEqual(got.frozenGrads, [], "frozen bases and biases take no gradient");
    console.log(
      `${label(c)}: max |err| y ${maxAbs(got.y, want.y).toExponential(2)}, dx ${
        maxAbs(got.dx, want.dx).toExponential(2)
      }, adapters ${worst.toExponential(2)}`,
    );
  });
}

Deno.test(
  "LoRA layers allocate the same on meta as on WebGPU (forward, backward, recompute, AdamW)",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    for (const [i, c] of CASES.entries()) {
      const h = hostData(c, 7 * i);
      await assertSameAllocations(gpu, async (dev) => {
        const b = build(dev, c, h);
        const d = c.cfg.hidden;
        const x = dev.tensor([c.S, d], { tag: "data", name: "x" });
        const dy = dev.tensor([c.S, d], { tag: "data", name: "dy" });
        const f = b.layer.forward(x);
        b.layer.backward(dy, f.saved).dispose();
        forwardOutput(b.layer, x).dispose();
        b.layer.backward(dy, recomputeSaved(b.layer, x)).dispose();
        const opt = new AdamW(dev);
        opt.stepAll([...b.frozen, ...b.trainable]);
        assert.ok(b.frozen.every((p) => !p.m && !p.grad), "no optimizer state for frozen bases");
        assert.ok(b.trainable.every((p) => p.m && p.v && !p.grad), "adapters stepped");
        for (const t of [f.out, x, dy]) t.dispose();
        b.dispose();
        await Promise.resolve();
      });
    }
  },
);

Deno.test("recompute and forwardOut of adapted layers match forward", gpuTest, async () => {
  const dev = await testDevice();
  for (const c of [CASES[0], CASES[5], CASES[8]]) {
    const h = hostData(c, 5);
    const b = build(dev, c, h);
    const x = dev.upload(Float32Array.from(h.x), [c.S, c.cfg.hidden], { tag: "data", name: "x" });
    const f = b.layer.forward(x);
    const y = await dev.readF32(f.out);
    const again = forwardOutput(b.layer, x);
    assertAllClose(await dev.readF32(again), y, { atol: 0, rtol: 0 }, `${label(c)} forwardOut`);
    const s1 = f.saved as { lora?: Record<string, Tensor> };
    const s2 = recomputeSaved(b.layer, x) as { lora?: Record<string, Tensor> };
    assert.deepEqual(Object.keys(s2.lora ?? {}).sort(), Object.keys(s1.lora ?? {}).sort());
    for (const [k, t] of Object.entries(s1.lora ?? {})) {
      if (!t) continue;
      assertAllClose(await dev.readF32(s2.lora![k]), await dev.readF32(t), { atol: 0, rtol: 0 }, k);
    }
    disposeAll([f, again, s2, x]);
    b.dispose();
  }
});

Deno.test("Ulysses SP 2 with adapters on the meta device: u per rank, adapters' gradients", () => {
  const dev = new MetaDevice();
  const c = CASES[0];
  const h = hostData(c, 3);
  const b = build(dev, c, h);
  const attn = b.layer as SelfAttention;
  const sp = new SelfAttention(dev, `${PRE}self_attn`, c.cfg, attn.p, 0, 2);
  const rows = 8; // this rank's S/K rows of S = 16
  const x = dev.tensor([rows, c.cfg.hidden], { tag: "data", name: "x" });
  const f = sp.forward(x);
  const lora = f.saved.lora!;
  assert.deepEqual(Object.keys(lora).sort(), ["k", "o", "q", "v"]);
  for (const t of Object.values(lora)) assert.deepEqual(t!.shape, [rows, c.r], t!.name);
  const dx = sp.backward(dev.tensor([rows, c.cfg.hidden], { tag: "data", name: "dy" }), f.saved);
  assert.deepEqual(dx.shape, [rows, c.cfg.hidden]);
  assert.ok(b.trainable.every((p) => p.grad !== null));
  assert.ok(b.frozen.every((p) => p.grad === null));
  b.dispose();
});

Deno.test("adapters are checked against their projection's shape", async () => {
  const dev = new MetaDevice();
  const c = CASES[5];
  const b = build(dev, c, hostData(c, 1));
  const m = b.layer as MLP;
  assert.throws(
    () => new MLP(dev, "mlp", m.gate, m.up, m.down, "silu", { down: m.lora.gate }),
    /LoRA "mlp.down_proj": base \(20, 27\) needs A \(r, 27\) and B \(20, r\); got A \[3, 20\], B \[27, 3\]/,
  );
  const frozen = b.frozen[0];
  assert.throws(() => frozen.gradFor(dev), /is frozen: it takes no gradient/);
  b.dispose();
  await Promise.resolve();
});

/**
 * LoRA as a memory technique (`lib/techniques/lora.ts`): its checks, name, flags and DeepSpeed
 * launch line; on the meta device a frozen base holds no gradients, moments or masters and an NF4
 * base counts exactly its bytes; meta = WebGPU for a LoRA and a QLoRA training step; on WebGPU
 * the loss and the adapters' gradients match the f64 reference (the NF4 base dequantised) under
 * the standard policy, recomputation, MsT, checkpoint offload and the HF profile;
 * optimizer-in-backward steps the adapters as the full step does; f16 trains.
 */

import assert from "node:assert/strict";
import { SMALL as MST_SMALL } from "./fixtures/small_model.ts";
import type { ModelConfig } from "../lib/config/model_config.ts";
import { parameterShapes } from "../lib/config/derived.ts";
import { getPreset } from "../lib/config/presets.ts";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { parsePolicy } from "../lib/cli/model_options.ts";
import { type Batch, Model } from "../lib/models/model.ts";
import { loraScaling } from "../lib/nn/lora.ts";
import { nf4DeviceBytes } from "../lib/ops/nf4_matmul.ts";
import { launchNote } from "../lib/plan/deepspeed_export.ts";
import { referenceLoss, type RefParams } from "../lib/reference/model.ts";
import { dequantizeNf4, quantizeNf4 } from "../lib/reference/nf4.ts";
import { LORA } from "../lib/techniques/lora.ts";
import { describePolicy, type MemoryPolicy, validatePolicy } from "../lib/techniques/policy.ts";
import { TECHNIQUES } from "../lib/techniques/registry.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";
import { assertSameAllocations } from "../lib/testing/meta_parity.ts";
import { randomBatch, randomWeights } from "../lib/testing/model_check.ts";
import { Trainer } from "../lib/train/trainer.ts";

const SMALL: ModelConfig = { ...MST_SMALL, name: "lora-small" };
const ALL = ["q", "k", "v", "o", "gate", "up", "down"] as const;
const PROJECTION = /^model\.layers\.\d+\.(self_attn\.[qkvo]|mlp\.(gate|up|down))_proj\.weight$/;

Deno.test("LoRA: checked, named, and its launch line", () => {
  assert.ok(TECHNIQUES.includes(LORA));
  assert.equal(LORA.enabled({}), false);
  assert.equal(LORA.enabled({ lora: { r: 8, alpha: 16 } }), true);
  const bad: [unknown, RegExp][] = [
    [{ r: 0, alpha: 16 }, /lora\.r must be a positive integer .* got 0/],
    [{ r: 8, alpha: -1 }, /lora\.alpha must be a number > 0 .* got -1/],
    [{ r: 8, alpha: 16, targets: [] }, /targets must be a non-empty list of q, k, v, o/],
    [{ r: 8, alpha: 16, targets: ["qkv"] }, /unknown layer "qkv"; use q, k, v, o, gate, up, down/],
    [{ r: 8, alpha: 16, targets: ["q", "q"] }, /lists a layer twice/],
    [{ r: 8, alpha: 16, base: "int8" }, /base must be one of nf4, f32, f16, bf16 .* "int8"/],
    [{ r: 8, alpha: 16, dropout: 0.1 }, /unknown field "dropout"/],
  ];
  for (const [lora, re] of bad) {
    assert.throws(() => validatePolicy({ lora } as MemoryPolicy), re);
  }
  assert.throws(
    () => validatePolicy({ lora: { r: 8, alpha: 16, base: "f16" } }, "f32"),
    /base "f16": the frozen base is stored in the device's float type, which counts floats as f32; use --base-dtype f32 \(or nf4 for QLoRA\), or --dtype f16/,
  );
  assert.throws(
    () => validatePolicy({ lora: { r: 8, alpha: 16 }, parallel: { gpus: 8, zero: 3 } }),
    /lora with 8 GPUs: .* plan LoRA on one GPU/,
  );
  validatePolicy({ lora: { r: 8, alpha: 16, base: "bf16" } }, "bf16");
  validatePolicy({ lora: { r: 8, alpha: 16, base: "nf4" }, checkpoint: true }, "bf16");
  assert.equal(describePolicy({ lora: { r: 32, alpha: 16 } }), "LoRA r=32");
  assert.equal(
    describePolicy({
      lora: { r: 8, alpha: 16, targets: ["q", "v"], base: "nf4" },
      checkpoint: true,
      mst: { mlp: "auto", head: "auto" },
    }),
    "QLoRA r=8 (q,v) + MsT + recomputation",
  );
  const note = launchNote({
    cfg: getPreset("llama3.3-70b"),
    policy: { lora: { r: 32, alpha: 16, base: "nf4" }, checkpoint: true },
    dtype: "bf16",
    seq: 8192,
  }, "ds.json");
  assert.match(
    note,
    /- LoRA \(r=32,alpha=16,targets=all\): `peft\.LoraConfig\(r=32, lora_alpha=16, target_modules=\["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"\], lora_dropout=0\.0, bias="none", use_rslora=False\)`; base loaded with `BitsAndBytesConfig\(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True\)`\./,
  );
});

Deno.test("LoRA: --lora and --base-dtype", () => {
  assert.deepEqual(parsePolicy({ lora: "r=32,alpha=16,targets=all" }), {
    lora: { r: 32, alpha: 16, targets: [...ALL] },
  });
  assert.deepEqual(
    parsePolicy({ policy: "mst", lora: "r=8,alpha=8,targets=q,v,rslora", "base-dtype": "nf4" }),
    {
      checkpoint: true,
      mst: { mlp: "auto", head: "auto" },
      lora: { r: 8, alpha: 8, targets: ["q", "v"], rslora: true, base: "nf4" },
    },
  );
  assert.throws(
    () => parsePolicy({ "base-dtype": "nf4" }),
    /--base-dtype nf4 sets the frozen base's storage under LoRA; add --lora/,
  );
  assert.throws(
    () => parsePolicy({ lora: "r=8,alpha=8", "base-dtype": "fp8" }),
    /--base-dtype fp8: use one of nf4, f32, f16, bf16/,
  );
  assert.throws(() => parsePolicy({ lora: "alpha=8" }), /key "r" is required/);
});

/** The adapters' names of a model (A and B of every targeted projection). */
function adapterNames(cfg: ModelConfig, targets: readonly string[] = ALL): string[] {
  const mods: Record<string, string> = {
    q: "self_attn.q_proj",
    k: "self_attn.k_proj",
    v: "self_attn.v_proj",
    o: "self_attn.o_proj",
    gate: "mlp.gate_proj",
    up: "mlp.up_proj",
    down: "mlp.down_proj",
  };
  const out: string[] = [];
  for (let i = 0; i < cfg.layers; i++) {
    for (const t of targets) {
      out.push(`model.layers.${i}.${mods[t]}.lora_A.weight`);
      out.push(`model.layers.${i}.${mods[t]}.lora_B.weight`);
    }
  }
  return out;
}

Deno.test(
  "LoRA on the meta device: a frozen base holds no gradient, moment or master; NF4 bytes exact",
  async () => {
    const cfg = getPreset("llama3-tiny");
    const S = 128;
    const r = 8;
    const batch = randomBatch(cfg.vocabSize, S, 1);
    for (const base of ["bf16", "nf4"] as const) {
      const dev = new MetaDevice({ floats: "bf16" });
      const model = Model.build(dev, cfg, { lora: { r, alpha: 16, base } });
      const weights = dev.allocator.stats().liveByTag.weights;
      const trainer = new Trainer(dev, model);
      await trainer.step(batch);
      await trainer.step(batch);
      const names = new Set(adapterNames(cfg));
      for (const p of model.params) {
        if (names.has(p.name)) {
          assert.ok(p.m && p.v && !p.frozen, `${p.name}: an adapter has moments`);
        } else {
          assert.ok(p.frozen && !p.m && !p.v && !p.grad && !p.master, `${p.name} frozen`);
        }
      }
      // weights: the base (NF4 projections, the rest bf16) plus the adapters (bf16)
      let want = 0;
      for (const { name, shape } of parameterShapes(cfg)) {
        const n = shape.reduce((a, b) => a * b, 1);
        want += base === "nf4" && PROJECTION.test(name)
          ? nf4DeviceBytes(shape[0], shape[1]).total
          : 2 * n;
      }
      let adapterElems = 0;
      for (const p of model.params) {
        if (names.has(p.name)) adapterElems += p.shape[0] * p.shape[1];
      }
      assert.equal(weights, want + 2 * adapterElems, `${base}: weight bytes`);
      // optimizer state: the adapters' two moments only
      assert.equal(dev.allocator.stats().liveByTag.optimizer, 2 * 2 * adapterElems);
      console.log(
        `llama3-tiny LoRA r=${r}, ${base} base on meta: weights ${weights} bytes (${adapterElems} ` +
          `adapter parameters), optimizer ${dev.allocator.stats().liveByTag.optimizer} bytes`,
      );
      model.dispose();
    }
  },
);

Deno.test(
  "LoRA and QLoRA training steps allocate the same on meta as on WebGPU",
  gpuTest,
  async () => {
    const gpu = await testDevice();
    const batch = randomBatch(SMALL.vocabSize, 24, 2);
    const policies: MemoryPolicy[] = [
      { lora: { r: 4, alpha: 8 } },
      { lora: { r: 4, alpha: 8, base: "nf4", targets: ["q", "v", "down"] } },
      { lora: { r: 4, alpha: 8, base: "nf4" }, checkpoint: true, mst: { mlp: 2, head: 3 } },
      { lora: { r: 4, alpha: 8 }, framework: "hf" },
    ];
    for (const policy of policies) {
      await assertSameAllocations(gpu, async (dev) => {
        const model = Model.build(dev, SMALL, policy, { seed: 3 });
        const trainer = new Trainer(dev, model);
        await trainer.step(batch);
        await trainer.step(batch);
        model.dispose();
      });
    }
  },
);

/** Random base weights and non-zero adapters (B ≠ 0: dA and the adapters' dx terms count). */
function loraWeights(cfg: ModelConfig, r: number, targets: readonly string[], seed: number) {
  const w = randomWeights(cfg, seed, 0.1);
  let s = seed * 1000;
  for (const name of adapterNames(cfg, targets)) {
    const module = name.replace(/\.lora_[AB]\.weight$/, "");
    const [N, K] = w.get(`${module}.weight`)!.shape;
    const shape = name.includes("lora_A") ? [r, K] : [N, r];
    w.set(name, { shape, data: randomArray(shape[0] * shape[1], ++s, 0.2) });
  }
  // f32-representable, as both sides hold them
  for (const v of w.values()) v.data = Float64Array.from(Float32Array.from(v.data));
  return w;
}

/** The model's loss and adapter gradients on `dev` (one sequence). */
async function deviceLora(dev: Device, cfg: ModelConfig, w: RefParams, b: Batch, p: MemoryPolicy) {
  const weights = new Map([...w].map(([k, v]) => [k, Float32Array.from(v.data)]));
  const model = Model.build(dev, cfg, p, { weights });
  const r = await model.lossAndGrads(b);
  const loss = (await dev.read(r.lossSum))[0] / r.denominator;
  r.lossSum.dispose();
  const grads = new Map<string, Float32Array>();
  for (const q of model.params) {
    if (q.name.includes(".lora_")) grads.set(q.name, await dev.readF32(q.grad!));
    else assert.equal(q.grad, null, `${q.name}: frozen, no gradient`);
  }
  model.dispose();
  return { loss, grads };
}

Deno.test(
  "LoRA and QLoRA: loss and adapter gradients match the f64 reference (NF4 base dequantised) under recomputation, MsT, offload and the HF profile",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const r = 3;
    const cases: { base?: "nf4"; targets: readonly string[]; policy: MemoryPolicy }[] = [
      { targets: ALL, policy: {} },
      { targets: ["q", "v", "down"], policy: { checkpoint: true, mst: { mlp: 3, head: 4 } } },
      { base: "nf4", targets: ALL, policy: {} },
      { base: "nf4", targets: ALL, policy: { checkpoint: true, offload: true } },
      { base: "nf4", targets: ["k", "o", "gate", "up"], policy: { framework: "hf" } },
      { targets: ALL, policy: { checkpoint: true, mst: { mlp: 2, head: 2 }, framework: "hf" } },
    ];
    const batch = randomBatch(SMALL.vocabSize, 29, 43, [5]);
    for (const [i, c] of cases.entries()) {
      const w = loraWeights(SMALL, r, c.targets, 10 + i);
      const policy: MemoryPolicy = {
        ...c.policy,
        lora: { r, alpha: 6, targets: c.targets as never, ...(c.base ? { base: c.base } : {}) },
      };
      const got = await deviceLora(dev, SMALL, w, batch, policy);
      // the reference's base: the dequantised NF4 weights under QLoRA
      const ref: RefParams = new Map(w);
      if (c.base === "nf4") {
        for (const [k, v] of w) {
          if (PROJECTION.test(k)) {
            ref.set(k, { shape: v.shape, data: dequantizeNf4(quantizeNf4(v.data, v.shape)) });
          }
        }
      }
      const want = referenceLoss(SMALL, ref, batch.ids, batch.targets, {
        lora: { scaling: loraScaling(r, 6) },
      });
      const what = `${describePolicy(policy)}`;
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-5 * want.loss, `${what}: loss`);
      assert.deepEqual([...got.grads.keys()].sort(), adapterNames(SMALL, c.targets).sort());
      let worst = 0;
      for (const [name, g] of got.grads) {
        const ref = want.grads.get(name)!;
        const scale = Math.max(...ref.map(Math.abs));
        assertAllClose(g, ref, { atol: 2e-5 * scale + 1e-7, rtol: 2e-3 }, `${what} ${name}`);
        for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j] - ref[j]) / scale);
      }
      console.log(
        `${what}: loss ${got.loss.toFixed(6)} (|err| ${
          Math.abs(got.loss - want.loss).toExponential(2)
        }), adapter gradients max |err|/max|g| ${worst.toExponential(2)}`,
      );
    }
  },
);

Deno.test(
  "LoRA: optimizer-in-backward steps the adapters as the full step does (no clipping); f16 trains",
  gpuTest,
  async () => {
    const dev = await testDevice();
    const w = loraWeights(SMALL, 4, ALL, 3);
    const weights = new Map([...w].map(([k, v]) => [k, Float32Array.from(v.data)]));
    const batch = randomBatch(SMALL.vocabSize, 21, 5);
    const adamw = { maxGradNorm: 0, lr: 1e-2 };
    const run = async (policy: MemoryPolicy, device: Device = dev) => {
      const model = Model.build(device, SMALL, policy, { weights });
      const trainer = new Trainer(device, model, { adamw });
      const losses = [];
      for (let i = 0; i < 3; i++) losses.push((await trainer.step(batch)).loss);
      const out = new Map<string, Float32Array>();
      for (const p of model.params) {
        if (p.name.includes(".lora_")) out.set(p.name, await device.readF32(p.master ?? p.value));
      }
      model.dispose();
      return { losses, adapters: out };
    };
    const lora = { r: 4, alpha: 8 };
    const full = await run({ lora, checkpoint: true });
    const oib = await run({ lora, checkpoint: true, optimizerInBackward: true });
    assert.deepEqual(oib.losses, full.losses);
    for (const [k, v] of full.adapters) assert.deepEqual(oib.adapters.get(k), v, k);
    assert.ok(full.losses[2] < full.losses[0], "the loss falls");
    let f16: Device;
    try {
      f16 = await testDeviceF16();
    } catch {
      console.log("f16: skipped (no shader-f16 on this adapter)");
      return;
    }
    const half = await run({ lora }, f16);
    const f32 = await run({ lora });
    assertAllClose(half.losses, f32.losses, { atol: 2e-2, rtol: 0 }, "f16 vs f32 losses");
    console.log(
      `LoRA losses f32 ${f32.losses.map((l) => l.toFixed(5)).join(" ")}, f16 ${
        half.losses.map((l) => l.toFixed(5)).join(" ")
      }`,
    );
  },
);

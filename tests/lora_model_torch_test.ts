/**
 * LoRA fine-tuning of a whole model, three ways: on WebGPU (`Model` under the LoRA technique,
 * `Trainer`), in the PyTorch peer (lib/bench/torch_llama.py with its `lora` field, PEFT's
 * semantics written without the peft package) and in the f64 reference (lib/reference/model.ts
 * with LoRA, lib/reference/adamw.ts): llama3-tiny, all seven targets, f32 base, 5 AdamW steps
 * on the adapters only, the adapters' initial values from our side; losses and adapters within
 * 1e-5 (WebGPU vs PyTorch, PyTorch vs the reference). Skipped with a message where no python3
 * imports torch, unless MST_REQUIRE_TORCH=1 (CI).
 */

import assert from "node:assert/strict";
import { getPreset } from "../lib/config/presets.ts";
import { parameterShapes } from "../lib/config/derived.ts";
import { runTorchStep, torchForTests, type TorchLora } from "../lib/bench/torch_peer.ts";
import { loraInitA, loraScaling } from "../lib/nn/lora.ts";
import type { AdamWOptions } from "../lib/optim/adamw.ts";
import { adamwRef } from "../lib/reference/adamw.ts";
import { referenceLoss, type RefParams } from "../lib/reference/model.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gaussian } from "../lib/util/random.ts";
import { Model } from "../lib/models/model.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import type { LoraTarget } from "../lib/nn/lora_options.ts";

const { py, skipNote } = await torchForTests();

const cfg = getPreset("llama3-tiny");
const S = 24;
const STEPS = 5;
const LORA: TorchLora = {
  r: 4,
  alpha: 8,
  rslora: false,
  targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
};
/**
 * Adam's update is scale-free: an element whose gradient is near zero turns f32 rounding of the
 * gradient into an update difference of up to lr (seen: 1.7e-4 at lr 1e-2, eps 1e-8). A small lr
 * and eps 1e-6 bound that sensitivity (≈ lr·|Δg|/eps) so the comparison measures the semantics.
 */
const ADAMW: AdamWOptions = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-6,
  weightDecay: 0.1,
  maxGradNorm: 1.0,
};

/** f32 base weights (as Model initialises them) and adapters (A: PEFT's init; B non-zero). */
function initialWeights(): Map<string, { shape: number[]; data: Float32Array }> {
  const normal = gaussian(0);
  const w = new Map<string, { shape: number[]; data: Float32Array }>();
  let seed = 100;
  for (const { name, shape } of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = name.endsWith("norm.weight")
      ? new Float32Array(n).fill(1)
      : Float32Array.from({ length: n }, () => normal() * 0.02);
    w.set(name, { shape: [...shape], data });
    const module = name.replace(/\.weight$/, "");
    if (LORA.targets.some((t) => module.endsWith(`.${t}`))) {
      const [N, K] = shape;
      w.set(`${module}.lora_A.weight`, { shape: [LORA.r, K], data: loraInitA(LORA.r, K, ++seed) });
      // PEFT starts B at zero; a non-zero B makes step 0's dA and the adapters' dx terms count
      w.set(`${module}.lora_B.weight`, {
        shape: [N, LORA.r],
        data: Float32Array.from(randomArray(N * LORA.r, ++seed, 0.05)),
      });
    }
  }
  return w;
}

/** The reference run: 5 steps of the f64 model with LoRA, AdamW on the adapters (clipped). */
function referenceRun(
  weights: Map<string, { shape: number[]; data: Float32Array }>,
  ids: Int32Array,
  targets: Int32Array,
) {
  const params: RefParams = new Map();
  for (const [k, v] of weights) params.set(k, { shape: v.shape, data: Float64Array.from(v.data) });
  const adapters = [...params.keys()].filter((k) => k.includes(".lora_"));
  const state = new Map(adapters.map((k) => {
    const n = params.get(k)!.data.length;
    return [k, { m: new Float64Array(n), v: new Float64Array(n) }];
  }));
  const scaling = loraScaling(LORA.r, LORA.alpha, LORA.rslora);
  const losses: number[] = [];
  for (let step = 1; step <= STEPS; step++) {
    const r = referenceLoss(cfg, params, ids, targets, { lora: { scaling } });
    losses.push(r.loss);
    let normSq = 0;
    for (const k of adapters) for (const g of r.grads.get(k)!) normSq += g * g;
    for (const k of adapters) {
      const s = state.get(k)!;
      adamwRef(params.get(k)!.data, r.grads.get(k)!, s.m, s.v, {
        lr: ADAMW.lr,
        beta1: ADAMW.beta1,
        beta2: ADAMW.beta2,
        eps: ADAMW.eps,
        weightDecay: ADAMW.weightDecay,
        step,
        clip: { normSq, maxNorm: ADAMW.maxGradNorm },
      });
    }
  }
  return { losses, adapters: new Map(adapters.map((k) => [k, params.get(k)!.data])) };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const weights = initialWeights();
const ids = Int32Array.from({ length: S }, (_, i) => (i * 7919 + 13) % cfg.vocabSize);
const targets = Int32Array.from({ length: S }, (_, i) => ids[(i + 1) % S]);
targets[3] = -100; // an ignored position

/** The peer's run (once, shared by both tests). */
let torchRun: ReturnType<typeof runTorchStep> | null = null;
function torchResult(expectLoss0: number) {
  return torchRun ??= runTorchStep(py!, cfg, weights, { ids, targets }, ADAMW, {
    warmup: 0,
    steps: STEPS,
    expectLoss0,
    tolerance: 1e-4,
    lora: LORA,
    threads: 1,
  });
}

Deno.test({
  name: `llama3-tiny LoRA (7 targets, r=4): WebGPU's 5 AdamW steps match PyTorch's within ` +
    `1e-5${skipNote}`,
  ignore: !py,
  ...gpuTest,
  fn: async () => {
    const dev = await testDevice();
    const short = (t: string) => t.replace("_proj", "") as LoraTarget;
    const model = Model.build(dev, cfg, {
      lora: { r: LORA.r, alpha: LORA.alpha, targets: LORA.targets.map(short) },
    }, { weights: new Map([...weights].map(([k, v]) => [k, v.data])) });
    const trainer = new Trainer(dev, model, { adamw: ADAMW });
    const losses: number[] = [];
    for (let i = 0; i < STEPS; i++) losses.push((await trainer.step({ ids, targets })).loss);
    const ours = new Map<string, Float32Array>();
    for (const p of model.params) {
      if (p.name.includes(".lora_")) ours.set(p.name, await dev.readF32(p.value));
      else assert.ok(p.frozen && !p.m, `${p.name}: frozen, no moments`);
    }
    model.dispose();
    const torch = await torchResult(losses[0]);
    const tol = { atol: 1e-5, rtol: 1e-5 };
    assertAllClose(losses, torch.losses, tol, "losses vs torch");
    assert.deepEqual([...ours.keys()].sort(), [...torch.adapters!.keys()].sort());
    let worst = 0;
    for (const [k, v] of ours) {
      assertAllClose(v, torch.adapters!.get(k)!, tol, `${k} vs torch`);
      worst = Math.max(worst, maxAbs(v, torch.adapters!.get(k)!));
    }
    console.log(
      `WebGPU vs torch ${torch.version}, LoRA llama3-tiny 5 steps: max |err| losses ${
        maxAbs(losses, torch.losses).toExponential(2)
      }, adapters ${worst.toExponential(2)} (${ours.size} tensors); losses ${
        losses.map((l) => l.toFixed(6)).join(" ")
      }`,
    );
  },
});

Deno.test({
  name: `llama3-tiny LoRA (7 targets, r=4): the PyTorch peer's 5 AdamW steps match the f64 ` +
    `reference within 1e-5${skipNote}`,
  ignore: !py,
  fn: async () => {
    const want = referenceRun(weights, ids, targets);
    const got = await torchResult(want.losses[0]);
    const tol = { atol: 1e-5, rtol: 1e-5 };
    assertAllClose(got.losses, want.losses, tol, "losses");
    assert.ok(got.adapters, "the peer returns the adapters");
    assert.deepEqual([...got.adapters.keys()].sort(), [...want.adapters.keys()].sort());
    assert.equal(got.adapters.size, 2 * 7 * cfg.layers);
    let worst = 0;
    for (const [k, v] of want.adapters) {
      assertAllClose(got.adapters.get(k)!, v, tol, k);
      worst = Math.max(worst, maxAbs(got.adapters.get(k)!, v));
      // the adapter moved (a frozen or untrained adapter would not)
      assert.ok(maxAbs(v, weights.get(k)!.data) > 1e-4, `${k} moved`);
    }
    // the base did not train: the peer returns adapters only, and the reference's loss fell
    assert.ok(want.losses[STEPS - 1] < want.losses[0], "the loss falls");
    console.log(
      `torch ${got.version} LoRA llama3-tiny vs f64 reference: max |err| losses ${
        maxAbs(got.losses, want.losses).toExponential(2)
      }, adapters ${worst.toExponential(2)}; losses ${
        want.losses.map((l) => l.toFixed(6)).join(" ")
      }`,
    );
  },
});

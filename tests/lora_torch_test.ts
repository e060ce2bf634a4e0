/**
 * LoRA against PyTorch (lib/bench/torch_lora.py, PEFT semantics without the peft package):
 * one layer's forward and backward, then 5 AdamW steps (clipped), on WebGPU and in torch from
 * the same f32 weights; losses, gradients and adapters within 1e-5. Skipped with a message
 * where no python3 imports torch (Debian: `apt-get install python3-torch`), unless
 * MST_REQUIRE_TORCH=1 (CI).
 */

import assert from "node:assert/strict";
import { runTorchLora, type TorchLoraResult } from "../lib/bench/torch_lora.ts";
import { torchForTests } from "../lib/bench/torch_peer.ts";
import { LoraLinear, loraScaling } from "../lib/nn/lora.ts";
import { createLoraParameters } from "../lib/nn/lora.ts";
import { Parameter } from "../lib/nn/parameter.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { AdamW, type AdamWOptions } from "../lib/optim/adamw.ts";

const { py, skipNote } = await torchForTests();

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const [S, N, K, r] = [17, 23, 29, 4];
const ALPHA = 16;
const STEPS = 5;
const ADAMW: AdamWOptions = {
  lr: 1e-2,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  maxGradNorm: 1.0,
};
const f32 = (a: Float64Array) => Float32Array.from(a);
const DATA = {
  x: f32(randomArray(S * K, 1)),
  w: f32(randomArray(N * K, 2, 0.2)),
  bias: f32(randomArray(N, 3, 0.1)),
  a: f32(randomArray(r * K, 4, 1 / Math.sqrt(K))),
  b: f32(randomArray(N * r, 5, 0.1)), // B non-zero: dA is non-trivial from step 0
  dy: f32(randomArray(S * N, 6, 1 / Math.sqrt(S * N))),
};
const VARIANTS = [false, true];

// both variants in one torch process (importing torch takes seconds)
let torchRuns: Promise<TorchLoraResult[]> | null = null;
function torchResults(): Promise<TorchLoraResult[]> {
  return torchRuns ??= runTorchLora(
    py!,
    VARIANTS.map((rslora) => ({
      S,
      N,
      K,
      r,
      alpha: ALPHA,
      rslora,
      ...DATA,
      steps: STEPS,
      adamw: ADAMW,
    })),
  );
}

for (const [variant, rslora] of VARIANTS.entries()) {
  Deno.test({
    name: `LoRA layer + 5 AdamW steps match PyTorch (PEFT semantics) within 1e-5${
      rslora ? ", rsLoRA" : ""
    }${skipNote}`,
    ignore: !py,
    ...gpuTest,
    fn: async () => {
      const dev = await testDevice();
      const { x, w, bias, a, b, dy } = DATA;
      const torch = (await torchResults())[variant];
      // ours
      const name = "model.layers.0.self_attn.q_proj";
      const base = new Parameter(`${name}.weight`, dev.upload(w, [N, K], { tag: "weights", name }));
      const pb = new Parameter(`${name}.bias`, dev.upload(bias, [N], { tag: "weights", name }));
      const ad = createLoraParameters(dev, name, { r, N, K }, { seed: 0, a, b });
      const layer = new LoraLinear(dev, name, base, ad.a, ad.b, loraScaling(r, ALPHA, rslora), pb);
      const tx = dev.upload(x, [S, K], { tag: "data", name: "x" });
      const tdy = dev.upload(dy, [S, N], { tag: "data", name: "dy" });
      const opt = new AdamW(dev, ADAMW);
      const losses: number[] = [];
      const tol = { atol: 1e-5, rtol: 1e-5 };
      const errs: Record<string, number> = {};
      for (let step = 0; step < STEPS; step++) {
        const { out, saved } = layer.forward(tx);
        const dx = layer.backward(tdy, saved);
        const y = await dev.readF32(out);
        losses.push(y.reduce((s, v, i) => s + v * dy[i], 0));
        if (step === 0) {
          const got = {
            y,
            dx: await dev.readF32(dx),
            dA: await dev.readF32(layer.a.grad!),
            dB: await dev.readF32(layer.b.grad!),
          };
          for (const k of ["y", "dx", "dA", "dB"] as const) {
            assertAllClose(got[k], torch[k], tol, `${k} vs torch`);
            errs[k] = maxAbs(got[k], torch[k]);
          }
        }
        out.dispose();
        dx.dispose();
        opt.stepAll(layer.parameters);
      }
      assert.equal(base.grad, null);
      assertAllClose(losses, torch.losses, tol, "losses vs torch");
      const A = await dev.readF32(layer.a.value);
      const B = await dev.readF32(layer.b.value);
      assertAllClose(A, torch.A, tol, "A after 5 steps vs torch");
      assertAllClose(B, torch.B, tol, "B after 5 steps vs torch");
      errs.losses = maxAbs(losses, torch.losses);
      errs.A = maxAbs(A, torch.A);
      errs.B = maxAbs(B, torch.B);
      assert.ok(maxAbs(A, a) > 1e-3, "the adapters moved");
      console.log(
        `LoRA vs torch ${torch.torch}${rslora ? " (rsLoRA)" : ""}: max |err| ${
          Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(", ")
        }; losses ${losses.map((l) => l.toFixed(6)).join(" ")}`,
      );
      for (const t of [tx, tdy]) t.dispose();
      for (const p of [base, pb, layer.a, layer.b]) p.dispose();
    },
  });
}

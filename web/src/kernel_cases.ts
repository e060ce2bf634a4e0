/**
 * The kernel reference cases, run in the page (and in Deno by `tests/web_kernels_test.ts`):
 * every WGSL kernel is compiled by the runtime's own compiler (Tint in Chromium, naga in
 * Deno) and its results are checked against the f64 reference, through
 * - whole tiny models (every family, odd shapes, recomputation, MsT, selective recomputation,
 *   the HF profile): the loss and every parameter gradient vs the f64 autograd model;
 * - AdamW (one-tensor and multi-tensor kernels, with clipping) vs its f64 reference.
 * Which kernels ran is recorded; a kernel file no case dispatched is reported as not covered.
 */

import type { Device, KernelCall } from "../../lib/device/device.ts";
import { WebGPUDevice } from "../../lib/device/webgpu.ts";
import type { ModelConfig } from "../../lib/config/model_config.ts";
import type { MemoryPolicy } from "../../lib/techniques/policy.ts";
import { getPreset } from "../../lib/config/presets.ts";
import { kernelSource } from "../../lib/device/kernel_source.ts";
import { adamwGroupSize, adamwUpdate, adamwUpdateMulti } from "../../lib/ops/adamw.ts";
import { sumSquares } from "../../lib/ops/reduce.ts";
import { adamwRef } from "../../lib/reference/adamw.ts";
import { sumSquaresRef } from "../../lib/reference/reduce.ts";
import { assertAllClose, randomArray } from "../../lib/testing/all_close.ts";
import {
  assertMatchesReference,
  randomBatch,
  randomWeights,
} from "../../lib/testing/model_check.ts";

/** Awkward shapes: nothing is a multiple of a workgroup size; 3 heads share 1 kv head. */
const ODD: ModelConfig = {
  ...getPreset("llama3-tiny"),
  name: "odd-llama",
  vocabSize: 53,
  hidden: 24,
  intermediate: 40,
  layers: 2,
  heads: 3,
  kvHeads: 1,
  headDim: 8,
  attnScale: 8 ** -0.5,
};

/** One case's outcome. */
export interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** Outcome of every case. */
export interface KernelCasesResult {
  cases: CaseResult[];
  failed: number;
  /** Kernel names dispatched by the cases. */
  kernelsRun: string[];
  /** Kernel files no case dispatched. */
  notCovered: string[];
  /**
   * Kernel files without template placeholders that no case dispatched, compiled on their own:
   * name → compiler errors (empty: compiled).
   */
  compiledAlone: Record<string, string[]>;
  /** The adapter the cases ran on. */
  adapter: string;
  summary: string;
}

type Case = [string, (dev: Device) => Promise<void>];

function modelCase(
  name: string,
  cfg: ModelConfig,
  S: number,
  policy: MemoryPolicy,
  seed: number,
): Case {
  return [name, async (dev) => {
    const batch = randomBatch(cfg.vocabSize, S, seed, [3]);
    await assertMatchesReference(dev, cfg, randomWeights(cfg, seed, 0.15), [batch], policy, {
      atol: 1e-4,
      rtol: 2e-3,
      relativeAtol: true,
    });
  }];
}

async function adamwCase(dev: Device, multi: boolean) {
  const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const sizes = multi ? [1001, 37, 515] : [1001];
  const p = sizes.map((n, i) => Float64Array.from(Float32Array.from(randomArray(n, 1 + i))));
  const m = sizes.map((n) => new Float64Array(n));
  const v = sizes.map((n) => new Float64Array(n));
  const pT = p.map((x) => dev.upload(Float32Array.from(x), [x.length], { tag: "weights" }));
  const mT = sizes.map((n) => dev.zeros([n], { tag: "optimizer" }));
  const vT = sizes.map((n) => dev.zeros([n], { tag: "optimizer" }));
  for (let step = 1; step <= 3; step++) {
    const g = sizes.map((n, i) =>
      Float64Array.from(Float32Array.from(randomArray(n, 10 * step + i, 0.5)))
    );
    const gT = g.map((x) => dev.upload(Float32Array.from(x), [x.length], { tag: "grads" }));
    const normSq = sumSquares(dev, gT);
    const clip = { normSq, maxNorm: 2 };
    if (multi) {
      // in groups the device's storage-buffer limit allows (2 on WebGPU's default 10)
      const group = adamwGroupSize(dev, { clip: true, work: false });
      for (let i0 = 0; i0 < sizes.length; i0 += group) {
        adamwUpdateMulti(
          dev,
          sizes.slice(i0, i0 + group).map((_, j) => ({
            param: pT[i0 + j],
            grad: gT[i0 + j],
            m: mT[i0 + j],
            v: vT[i0 + j],
            weightDecay: hp.weightDecay,
          })),
          { ...hp, step, clip },
        );
      }
    } else adamwUpdate(dev, pT[0], gT[0], mT[0], vT[0], { ...hp, step, clip });
    const refClip = { normSq: sumSquaresRef(g), maxNorm: 2 };
    for (let i = 0; i < sizes.length; i++) {
      adamwRef(p[i], g[i], m[i], v[i], { ...hp, step, clip: refClip });
    }
    for (const t of gT) t.dispose();
    normSq.dispose();
  }
  for (let i = 0; i < sizes.length; i++) {
    assertAllClose(await dev.readF32(pT[i]), p[i], { atol: 1e-6, rtol: 1e-5 }, `param ${i}`);
    assertAllClose(await dev.readF32(mT[i]), m[i], { atol: 1e-6, rtol: 1e-5 }, `m ${i}`);
    assertAllClose(await dev.readF32(vT[i]), v[i], { atol: 1e-9, rtol: 1e-5 }, `v ${i}`);
  }
  for (const t of [...pT, ...mT, ...vT]) t.dispose();
}

/**
 * The cases, in order: the fewest that dispatch every kernel the training step uses (each
 * pipeline compiles slowly on a software GPU such as SwiftShader): odd shapes with
 * recomputation, MsT and selective recomputation (the unfused cross-entropy, pair-row and
 * half-GLU matmuls), Qwen2 (bias kernels, fused cross-entropy), Gemma-2 (soft-caps, the
 * alternating window, GeGLU, post-norms), and both AdamW kernels.
 */
function kernelCases(set: "all" | "quick" = "all"): Case[] {
  const gemma = getPreset("gemma2-tiny");
  // Gemma-2's soft-caps only matter when logits are large: small caps here
  Object.assign(gemma, { attnSoftcap: 2, finalSoftcap: 1.5 });
  const all: Case[] = [
    modelCase("odd-llama S=37: recomputation + MsT (M=3/4) + selective recomputation", ODD, 37, {
      checkpoint: true,
      keepAttention: true,
      mst: { mlp: 3, head: 4 },
    }, 2),
    modelCase("qwen2-tiny S=40 (qkv bias)", getPreset("qwen2-tiny"), 40, {}, 11),
    modelCase("gemma2-tiny S=40 (soft-caps, window 32 on even layers)", gemma, 40, {}, 11),
    ["adamw (one tensor, clipped) 3 steps", (d) => adamwCase(d, false)],
    ["adamw_multi (3 tensors, clipped) 3 steps", (d) => adamwCase(d, true)],
  ];
  // quick (the CI's browser test): the odd-shape model case and AdamW; the other kernels are
  // compiled on their own
  return set === "all" ? all : all.filter((c) => !/^(qwen2|gemma2)/.test(c[0]));
}

/**
 * Compiles `source` with the device's shader compiler; the error messages (empty: it
 * compiled).
 */
async function compileErrors(dev: WebGPUDevice, name: string, source: string): Promise<string[]> {
  const m = dev.gpu.createShaderModule({ code: source, label: name });
  const info = await m.getCompilationInfo();
  return info.messages.filter((x) => x.type === "error").map((x) =>
    `${x.lineNum}:${x.linePos} ${x.message}`
  );
}

/**
 * Runs the cases of `set` on a new WebGPU device; `log` gets one line per case. `kernelFiles`:
 * every kernel name, for the coverage list (the registered texts are not enumerable).
 */
export async function runKernelCases(
  log: (line: string) => void = () => {},
  kernelFiles: readonly string[] = [],
  set: "all" | "quick" = "all",
): Promise<KernelCasesResult> {
  const dev = await WebGPUDevice.create();
  const seen = new Set<string>();
  const dispatch = dev.dispatch.bind(dev);
  dev.dispatch = (call: KernelCall) => {
    seen.add(call.kernel);
    dispatch(call);
  };
  const info = dev.adapterInfo;
  const adapter = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ");
  const cases: CaseResult[] = [];
  try {
    for (const [name, run] of kernelCases(set)) {
      const t0 = performance.now();
      try {
        await run(dev);
        cases.push({ name, ok: true, ms: performance.now() - t0 });
        log(`ok   ${name}`);
      } catch (e) {
        const error = (e as Error).message;
        cases.push({ name, ok: false, ms: performance.now() - t0, error });
        log(`FAIL ${name}: ${error}`);
      }
    }
  } finally {
    dev.destroy();
  }
  const kernelsRun = [...seen].sort();
  const notCovered = kernelFiles.filter((k) => !seen.has(k));
  const compiledAlone: Record<string, string[]> = {};
  const dev2 = await WebGPUDevice.create();
  try {
    for (const k of notCovered) {
      const src = kernelSource(k);
      if (src.includes("{{")) continue; // a template: compiles only once specialized
      compiledAlone[k] = await compileErrors(dev2, k, src);
      log(
        `${compiledAlone[k].length ? "FAIL" : "ok  "} ${k} compiles on its own` +
          (compiledAlone[k].length ? `: ${compiledAlone[k].join("; ")}` : ""),
      );
    }
  } finally {
    dev2.destroy();
  }
  const failed = cases.filter((c) => !c.ok).length +
    Object.values(compiledAlone).filter((e) => e.length > 0).length;
  return {
    cases,
    failed,
    kernelsRun,
    notCovered,
    compiledAlone,
    adapter,
    summary:
      `${cases.length - failed}/${cases.length} cases match the f64 reference on ${
        adapter || "this adapter"
      }; ${kernelsRun.length} kernels compiled and ran` +
      (notCovered.length
        ? `; not dispatched by a case: ${notCovered.join(", ")} (of these, ${
          Object.keys(compiledAlone).length
        } without template placeholders were compiled on their own)`
        : ""),
  };
}

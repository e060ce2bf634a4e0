/**
 * `deno task quantize` (tasks/quantize.ts, lib/checkpoint/nf4_checkpoint.ts): a tiny model's
 * run saved by this project, quantised to NF4 in bitsandbytes' layout, reloaded, dequantised
 * and run through the NF4 kernel; bad input gets clear errors.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { saveRunState, type TensorMap } from "../lib/checkpoint/run_state.ts";
import {
  nf4WeightNames,
  parseNf4Targets,
  pythonFloatRepr,
  QUANT_STATE_SUFFIX,
  readNf4Weight,
} from "../lib/checkpoint/nf4_checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../lib/checkpoint/safetensors.ts";
import { parameterShapes, shapeSize } from "../lib/config/derived.ts";
import { getPreset } from "../lib/config/presets.ts";
import { nf4Linear, Nf4Weight } from "../lib/ops/nf4_matmul.ts";
import { dequantizeNf4, nf4Bytes, quantizeNf4 } from "../lib/reference/nf4.ts";
import { assertAllClose, randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice } from "../lib/testing/gpu.ts";
import { gaussian } from "../lib/util/random.ts";
import { main } from "../tasks/quantize.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mst-nf4-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Saves a llama3-tiny run with random weights into `dir`; returns its weights. */
async function saveTinyRun(dir: string): Promise<TensorMap> {
  const config = getPreset("llama3-tiny");
  const model: TensorMap = new Map();
  const zeros: TensorMap = new Map();
  parameterShapes(config).forEach((p, i) => {
    const g = gaussian(i + 1);
    const n = shapeSize(p.shape);
    model.set(p.name, { shape: p.shape, data: Float32Array.from({ length: n }, () => g() * 0.02) });
    zeros.set(p.name, { shape: p.shape, data: new Float32Array(n) });
  });
  await saveRunState(dir, {
    model,
    optimizer: { step: 3, expAvg: zeros, expAvgSq: zeros },
    info: { step: 3, data: null, rng: null, config },
  });
  return model;
}

Deno.test(
  "quantize: a saved tiny model → NF4 safetensors → reload matches the reference",
  gpuTest,
  async () => {
    await withTempDir(async (dir) => {
      const model = await saveTinyRun(join(dir, "run"));
      const input = join(dir, "run", "model.safetensors");
      const out = join(dir, "q.safetensors");
      const lines = await main([input, "--out", out]);
      assert.match(lines[0], /quantised 14 linear weights \(\d+ parameters\) to NF4/);
      const file = await readSafetensors(out);
      const cfg = getPreset("llama3-tiny");
      const linear = parameterShapes(cfg).filter((p) => /_proj\.weight$/.test(p.name));
      assert.equal(linear.length, 7 * cfg.layers);
      assert.deepEqual(nf4WeightNames(file).sort(), linear.map((p) => p.name).sort());
      assert.equal(file.metadata.format, "pt");
      assert.equal(file.metadata.step, "3");
      assert.equal(JSON.parse(file.metadata.quantization_config).bnb_4bit_quant_type, "nf4");
      let fileBytes = 0;
      for (const p of linear) {
        const q = readNf4Weight(file, p.name, out);
        const want = quantizeNf4(model.get(p.name)!.data, p.shape);
        assert.deepEqual(q.shape, p.shape);
        assert.deepEqual(dequantizeNf4(q), dequantizeNf4(want), p.name);
        assert.deepEqual(file.tensors.get(p.name)!.shape, [Math.ceil(shapeSize(p.shape) / 2), 1]);
        const state = new TextDecoder().decode(
          file.tensors.get(p.name + QUANT_STATE_SUFFIX)!.data as Uint8Array,
        );
        assert.equal(
          state,
          `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [${
            p.shape.join(", ")
          }], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${
            pythonFloatRepr(want.offset)
          }}`,
        );
        const b = nf4Bytes(p.shape[0], p.shape[1]);
        assert.equal(
          (file.tensors.get(p.name)!.data.byteLength) +
            file.tensors.get(p.name + ".absmax")!.data.byteLength +
            file.tensors.get(p.name + ".nested_absmax")!.data.byteLength + 4,
          b.total,
          `${p.name}: the file holds nf4Bytes() of data (+ the offset in the quant state)`,
        );
        fileBytes += b.total;
      }
      assert.ok(fileBytes > 0);
      // Everything else is kept bit for bit.
      for (const p of parameterShapes(cfg).filter((p) => !/_proj\.weight$/.test(p.name))) {
        const t = file.tensors.get(p.name)!;
        assert.equal(t.dtype, "F32", p.name);
        assert.deepEqual(t.data, model.get(p.name)!.data, p.name);
      }
      // The reloaded weight on the device: the NF4 kernel against f64 with the reference weight.
      const dev = await testDevice();
      const name = "model.layers.1.mlp.down_proj.weight";
      const q = readNf4Weight(file, name, out);
      const [N, K] = q.shape;
      const W = Nf4Weight.upload(dev, q, { name });
      const S = 9;
      const x = randomArray(S * K, 7);
      const tx = dev.upload(Float32Array.from(x), [S, K], { tag: "data", name: "x" });
      const y = nf4Linear(dev, tx, W);
      const w = dequantizeNf4(quantizeNf4(model.get(name)!.data, [N, K]));
      const ref = new Float64Array(S * N);
      for (let s = 0; s < S; s++) {
        for (let n = 0; n < N; n++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc += x[s * K + k] * w[n * K + k];
          ref[s * N + n] = acc;
        }
      }
      assertAllClose(
        await dev.readF32(y),
        ref,
        { atol: 1e-6, rtol: 1e-5 },
        "y from the reloaded file",
      );
      for (const t of [tx, y]) t.dispose();
      W.dispose();
    });
  },
);

Deno.test("quantize: --targets, BF16 input, and clear errors on bad input", async () => {
  await withTempDir(async (dir) => {
    const w = Float32Array.from(randomArray(6 * 70, 2));
    const bf16 = new Uint16Array(new Uint32Array(w.buffer).map((b) => b >>> 16));
    const input = join(dir, "in.safetensors");
    await writeSafetensors(
      input,
      new Map([
        ["model.layers.0.self_attn.q_proj.weight", { dtype: "BF16", shape: [6, 70], data: bf16 }],
        ["model.layers.0.mlp.up_proj.weight", { shape: [6, 70], data: w }],
        ["model.norm.weight", { shape: [70], data: new Float32Array(70).fill(1) }],
      ]),
    );
    const out = join(dir, "out.safetensors");
    await main([input, "--out", out, "--targets", "q"]);
    const file = await readSafetensors(out);
    assert.deepEqual(nf4WeightNames(file), ["model.layers.0.self_attn.q_proj.weight"]);
    assert.equal(file.tensors.get("model.layers.0.mlp.up_proj.weight")!.dtype, "F32");
    const q = readNf4Weight(file, "model.layers.0.self_attn.q_proj.weight");
    const widened = new Float32Array(Uint32Array.from(bf16, (b) => b << 16).buffer);
    assert.deepEqual(dequantizeNf4(q), dequantizeNf4(quantizeNf4(widened, [6, 70])));
    assert.match(
      new TextDecoder().decode(
        file.tensors.get(`model.layers.0.self_attn.q_proj.weight${QUANT_STATE_SUFFIX}`)!
          .data as Uint8Array,
      ),
      /"dtype": "bfloat16", "shape": \[6, 70\]/,
    );

    await assert.rejects(() => main([input, "--out", out]), /exists; pass --force/);
    await assert.rejects(() => main([input, "--out", input, "--force"]), /is the input file/);
    await assert.rejects(
      () => main([out, "--out", join(dir, "again.safetensors")]),
      /is already quantised/,
    );
    await assert.rejects(
      () => main([join(dir, "missing.safetensors"), "--out", join(dir, "x.safetensors")]),
      /no such file/,
    );
    await assert.rejects(
      () => main([input, "--out", join(dir, "y"), "--targets", "q,lm"]),
      /unknown NF4 target "lm"/,
    );
    await assert.rejects(() => main([input]), /give one input file and --out/);
    const norms = join(dir, "norms.safetensors");
    await writeSafetensors(
      norms,
      new Map([["model.norm.weight", { shape: [4], data: new Float32Array(4) }]]),
    );
    await assert.rejects(
      () => main([norms, "--out", join(dir, "z.safetensors")]),
      /holds no weight of the targets q, k, v, o, gate, up, down/,
    );
    const nan = join(dir, "nan.safetensors");
    await writeSafetensors(
      nan,
      new Map([["a.mlp.down_proj.weight", { shape: [1, 2], data: Float32Array.of(1, NaN) }]]),
    );
    await assert.rejects(
      () => main([nan, "--out", join(dir, "n.safetensors")]),
      /"a\.mlp\.down_proj\.weight": quantizeNf4: element 1 is NaN/,
    );
    // a damaged file: an entry missing
    file.tensors.delete("model.layers.0.self_attn.q_proj.weight.absmax");
    assert.throws(
      () => readNf4Weight(file, "model.layers.0.self_attn.q_proj.weight", "f"),
      /lacks its entry "model\.layers\.0\.self_attn\.q_proj\.weight\.absmax"/,
    );
  });
});

Deno.test("parseNf4Targets and pythonFloatRepr", () => {
  assert.deepEqual(parseNf4Targets("all"), ["q", "k", "v", "o", "gate", "up", "down"]);
  assert.deepEqual(parseNf4Targets("up, q,up"), ["up", "q"]);
  assert.throws(() => parseNf4Targets(","), /no NF4 target/);
  // Python's repr(float) for the nested_offset JSON field.
  const cases: [number, string][] = [
    [0.5, "0.5"],
    [1, "1.0"],
    [123.25, "123.25"],
    [1e-5, "1e-05"],
    [0.0001, "0.0001"],
    [1.5e-7, "1.5e-07"],
    [1e16, "1e+16"],
    [1234567890123456, "1234567890123456.0"],
    [-0.03125, "-0.03125"],
    [Math.fround(4.421186923980713), "4.421186923980713"],
  ];
  for (const [x, s] of cases) assert.equal(pythonFloatRepr(x), s, String(x));
});

/**
 * The NF4 reference (lib/reference/nf4.ts): code table, dynamic map, hand-worked quantisations,
 * double quantisation, round-trip error bounds, the byte count, and (where Debian's
 * python3-torch is installed) byte-for-byte equality with bitsandbytes' own quantisation code
 * run in torch (lib/reference/bnb_nf4.py).
 */

import assert from "node:assert/strict";
import { torchForTests } from "../lib/bench/torch_peer.ts";
import {
  ABSMAX_BLOCK,
  dequantizeNf4,
  dynamicMap,
  NF4_BLOCK,
  NF4_CODE,
  nf4BlockScales,
  nf4Bytes,
  nf4CodeAt,
  quantizeNf4,
  torchSumF32,
} from "../lib/reference/nf4.ts";
import { gaussian, rng } from "../lib/util/random.ts";

const f = Math.fround;

Deno.test("NF4 code table: bitsandbytes' 16 values, sorted, f32-exact, -1, 0 and 1 in place", () => {
  assert.deepEqual(NF4_CODE.length, 16);
  for (let i = 0; i < 16; i++) {
    assert.deepEqual(f(NF4_CODE[i]), NF4_CODE[i], `code ${i} is an f32 value`);
    if (i > 0) assert(NF4_CODE[i] > NF4_CODE[i - 1], `code ${i} is above code ${i - 1}`);
  }
  assert.deepEqual([NF4_CODE[0], NF4_CODE[7], NF4_CODE[15]], [-1, 0, 1]);
  // Spot values from get_4bit_type("nf4") / nf4_dequantization_lut.
  assert.deepEqual(NF4_CODE[1], -0.6961928009986877);
  assert.deepEqual(NF4_CODE[8], 0.07958029955625534);
  assert.deepEqual(NF4_CODE[14], 0.7229568362236023);
});

Deno.test("dynamic 8-bit map: 127 negatives, 0, 127 positives, 1; decades as create_dynamic_map", () => {
  const m = dynamicMap();
  assert.deepEqual(m.length, 256);
  for (let i = 1; i < 256; i++) assert(m[i] > m[i - 1], `map[${i}] > map[${i - 1}]`);
  assert.deepEqual(m[127], 0);
  assert.deepEqual(m[255], 1);
  for (let i = 0; i < 127; i++) assert.deepEqual(m[i], -m[254 - i], `map[${i}] = -map[${254 - i}]`);
  // Exponent i contributes 2^i positive values in [0.1·10^(i-6), 10^(i-6)).
  for (let e = 0; e < 7; e++) {
    const lo = 0.1 * 10 ** (e - 6);
    const hi = 10 ** (e - 6);
    const count = Array.from(m.subarray(128, 255)).filter((v) => v >= lo && v < hi).length;
    assert.deepEqual(count, 2 ** e, `values in [${lo}, ${hi})`);
  }
  // Hand-worked: the smallest positive is 1e-6 · (0.1 + 1)/2, the largest below 1 is the mean
  // of the last two points of linspace(0.1, 1, 65): 1 - 0.9/128.
  assert(Math.abs(m[128] - 5.5e-7) < 1e-13, `map[128] = ${m[128]}`);
  assert(Math.abs(m[254] - (1 - 0.9 / 128)) < 1e-7, `map[254] = ${m[254]}`);
});

Deno.test("quantizeNf4: a hand-worked block — nearest codes, ties down, high nibble first", () => {
  const v = new Float32Array(64);
  v.set([2, -2, 1, 0.3, 0.1, -0.05, -0.04, 0]);
  const q = quantizeNf4(v, [64]);
  // absmax 2: scaled 1, -1, 0.5, 0.15, 0.05, -0.025, -0.02, 0 → codes 15, 0, 12 (0.5 is below
  // the 12|13 midpoint 0.5017), 9 (0.1203 < 0.15 < 0.2035), 8 (0.05 > 0.0398), 7, 7, 7.
  assert.deepEqual(Array.from(q.packed.subarray(0, 4)), [0xf0, 0xc9, 0x87, 0x77]);
  assert.deepEqual(q.packed.length, 32);
  assert(q.packed.subarray(4).every((b) => b === 0x77), "zeros are code 7 (0.0)");
  // One block: offset = its absmax, centred value 0; the second level has one short block,
  // whose stored absmax is clamped to 1e-38 (bitsandbytes' default kernel) → the code of 0.
  assert.deepEqual(q.offset, 2);
  assert.deepEqual(Array.from(q.nestedAbsmax), [f(1e-38)]);
  assert.deepEqual(q.nestedMap[q.absmax[0]], 0);
  assert.deepEqual(Array.from(nf4BlockScales(q)), [2]);
  const d = dequantizeNf4(q);
  assert.deepEqual(Array.from(d.subarray(0, 8)), [
    2,
    -2,
    f(NF4_CODE[12] * 2),
    f(NF4_CODE[9] * 2),
    f(NF4_CODE[8] * 2),
    0,
    0,
    0,
  ]);
});

Deno.test("quantizeNf4: double quantisation of two blocks (absmax 2 and 4 → offset 3, ±1)", () => {
  const v = new Float32Array(128);
  v[5] = -2;
  v[64 + 9] = 4;
  const q = quantizeNf4(v, [2, 64]);
  assert.deepEqual(q.offset, 3);
  assert.deepEqual(Array.from(q.nestedAbsmax), [1]);
  // centred -1 and +1: the dynamic map's ends below are ±(1 - 0.9/128) and 1.
  assert.deepEqual(Array.from(q.absmax), [0, 255]);
  const m = q.nestedMap;
  assert.deepEqual(Array.from(nf4BlockScales(q)), [f(m[0] + 3), 4]);
  const d = dequantizeNf4(q);
  assert.deepEqual(d[5], -f(m[0] + 3));
  assert.deepEqual(d[64 + 9], 4);
  assert.deepEqual(nf4CodeAt(q.packed, 5), 0);
  assert.deepEqual(nf4CodeAt(q.packed, 73), 15);
});

Deno.test("quantizeNf4: odd element count, short last block, blocks straddling rows", () => {
  const g = gaussian(3);
  const shape = [7, 11]; // 77 elements: blocks [0, 64) and [64, 77); 39 bytes, last nibble pad
  const v = Float32Array.from({ length: 77 }, () => g());
  const q = quantizeNf4(v, shape);
  assert.deepEqual(q.packed.length, 39);
  assert.deepEqual(q.absmax.length, 2);
  assert.deepEqual(q.packed[38] & 15, 7, "the pad nibble is code 7");
  const tailMax = Math.max(...Array.from(v.subarray(64)).map(Math.abs));
  const s = nf4BlockScales(q);
  assert(Math.abs(s[1] - tailMax) <= 0.00704 * q.nestedAbsmax[0] + 1e-6, "tail block absmax");
});

Deno.test("quantizeNf4 round trip on Gaussian weights: nearest codes and error bounds", () => {
  const rows = 50;
  const cols = 330; // 16500 elements: 258 blocks → two second-level blocks, the last short
  const g = gaussian(11);
  const v = Float32Array.from({ length: rows * cols }, (_, i) => g() * (1 + (i % 7)) * 0.02);
  const q = quantizeNf4(v, [rows, cols]);
  assert.deepEqual(q.nestedAbsmax.length, 2);
  const d = dequantizeNf4(q);
  const scales = nf4BlockScales(q);
  const map = q.nestedMap;
  let mapHalfGap = 0;
  for (let i = 1; i < 256; i++) mapHalfGap = Math.max(mapHalfGap, (map[i] - map[i - 1]) / 2);
  let nf4HalfGap = 0;
  for (let i = 1; i < 16; i++) {
    nf4HalfGap = Math.max(nf4HalfGap, (NF4_CODE[i] - NF4_CODE[i - 1]) / 2);
  }
  assert(Math.abs(mapHalfGap - 0.9 / 128) < 1e-7, `dynamic map half gap ${mapHalfGap}`);
  assert.equal(nf4HalfGap, (NF4_CODE[1] - NF4_CODE[0]) / 2, "the widest NF4 gap is the first");
  let maxErr = 0;
  let maxScaleErr = 0;
  for (let b = 0; b < q.absmax.length; b++) {
    let am = 0;
    for (let i = b * NF4_BLOCK; i < Math.min(v.length, (b + 1) * NF4_BLOCK); i++) {
      am = Math.max(am, Math.abs(v[i]));
    }
    const scaleErr = Math.abs(scales[b] - am);
    maxScaleErr = Math.max(maxScaleErr, scaleErr);
    assert(
      scaleErr <= mapHalfGap * q.nestedAbsmax[Math.floor(b / ABSMAX_BLOCK)] * (1 + 1e-6) + 1e-7,
      `block ${b}: absmax ${am} dequantised as ${scales[b]}`,
    );
    for (let i = b * NF4_BLOCK; i < Math.min(v.length, (b + 1) * NF4_BLOCK); i++) {
      // The chosen code is the nearest one to v/absmax (ties are measure-zero here).
      const x = f(v[i] * f(1 / am));
      const c = nf4CodeAt(q.packed, i);
      for (let k = 0; k < 16; k++) {
        assert(Math.abs(x - NF4_CODE[c]) <= Math.abs(x - NF4_CODE[k]) + 1e-7, `element ${i}`);
      }
      const err = Math.abs(d[i] - v[i]);
      maxErr = Math.max(maxErr, err);
      assert(err <= nf4HalfGap * am + scaleErr + 1e-6, `element ${i}: ${v[i]} → ${d[i]}`);
    }
  }
  assert(maxErr > 0 && maxScaleErr > 0, "quantisation loses something");
});

Deno.test("quantizeNf4 rejects non-finite weights and shapes that do not fit", () => {
  let msg = "";
  try {
    quantizeNf4([1, NaN], [2]);
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("element 1 is NaN"), msg);
  try {
    quantizeNf4([1, 2, 3], [2, 2]);
    msg = "";
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("product is the 3 values"), msg);
});

Deno.test("nf4Bytes: ⌈n/2⌉ + ⌈n/64⌉ + 4·⌈⌈n/64⌉/256⌉ + 4, ≈ 4.127 bits per parameter", () => {
  assert.deepEqual(nf4Bytes(3, 5), {
    codes: 8,
    absmax: 1,
    nestedAbsmax: 4,
    offset: 4,
    total: 17,
    bitsPerParameter: 8 * 17 / 15,
  });
  const big = nf4Bytes(4096, 4096); // 8388608 + 262144 + 4·1024 + 4
  assert.deepEqual(big.total, 8_654_852);
  assert.equal(big.bitsPerParameter, 8 * 8_654_852 / 4096 ** 2); // 4.1269550…
  assert(Math.abs(big.bitsPerParameter - (4 + 8 / 64 + 32 / (64 * 256))) < 2e-6);
  // The count matches the arrays quantizeNf4 produces.
  const q = quantizeNf4(new Float32Array(77 * 129).fill(0.5), [77, 129]);
  const c = nf4Bytes(77, 129);
  assert.deepEqual(c.total, q.packed.length + q.absmax.length + 4 * q.nestedAbsmax.length + 4);
});

/** Runs lib/reference/bnb_nf4.py with a JSON request. */
async function runBnb(python: string, req: unknown): Promise<Record<string, unknown>> {
  const script = new URL("../lib/reference/bnb_nf4.py", import.meta.url).pathname;
  const child = new Deno.Command(python, {
    args: [script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(req)));
  await w.close();
  const out = await child.output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const { py, skipNote } = await torchForTests();

Deno.test({
  name:
    `quantizeNf4 equals bitsandbytes' quantize_4bit(nf4, compress_statistics) byte for byte${skipNote}`,
  ignore: !py,
}, async () => {
  const r = rng(5);
  const lengths = [1, 7, 8, 33, 300, 511, 4100, 70_000];
  const sums = lengths.map((n) => Array.from({ length: n }, () => f(r() * 3)));
  const shapes = [[37, 70], [300, 130], [1, 64]];
  const inputs = shapes.map(([rows, cols]) => {
    const g = gaussian(rows * 1000 + cols);
    return Float32Array.from({ length: rows * cols }, (_, i) => g() * (0.5 + (i % 13) / 4));
  });
  const out = await runBnb(py!.python, { sums, quantize: inputs.map((v) => Array.from(v)) });
  // torch's f32 sum, which absmax.mean() rests on
  assert.deepEqual(sums.map(torchSumF32), out.sums);
  const results = out.quantized as Record<string, unknown>[];
  shapes.forEach((shape, k) => {
    const q = quantizeNf4(inputs[k], shape);
    const b = results[k];
    const what = `shape [${shape.join(", ")}]`;
    assert.deepEqual(Array.from(q.quantMap), b.quant_map, `${what}: quant_map`);
    assert.deepEqual(Array.from(q.nestedMap), b.nested_quant_map, `${what}: nested_quant_map`);
    assert.equal(q.offset, b.offset, `${what}: offset`);
    assert.deepEqual(Array.from(q.nestedAbsmax), b.nested_absmax, `${what}: nested_absmax`);
    assert.deepEqual(Array.from(q.absmax), b.absmax, `${what}: absmax codes`);
    assert.deepEqual(Array.from(q.packed), b.packed, `${what}: packed codes`);
  });
});

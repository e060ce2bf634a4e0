/**
 * Checkpoints: safetensors round trips, exact layout, corrupt-file errors, atomic writes,
 * and run directories (weights, AdamW moments, state.json).
 */

import { deepEqual, equal, ok, rejects, throws } from "@std/assert";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  parseSafetensors,
  readSafetensors,
  type SafeTensor,
  SafetensorsError,
  serializeSafetensors,
  writeSafetensors,
} from "../lib/checkpoint/safetensors.ts";
import {
  loadRunState,
  RUN_FILES,
  type RunState,
  saveRunState,
  type TensorMap,
} from "../lib/checkpoint/run_state.ts";
import { WindowStream } from "../lib/data/batches.ts";
import { parameterShapes, shapeSize } from "../lib/config/derived.ts";
import { getPreset } from "../lib/config/presets.ts";

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "ckpt-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true });
  }
}

function randomF32(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) | 0;
    a[i] = (s >>> 8) / 2 ** 24 - 0.5;
  }
  return a;
}

Deno.test("safetensors: round trip of every dtype, order and metadata kept", () => {
  const tensors = new Map<string, SafeTensor>([
    ["w", { shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, -6.5) }],
    ["ids", { shape: [3], data: Int32Array.of(-1, 0, 7) }],
    ["scalar", { shape: [], data: Float64Array.of(Math.PI) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
    ["half", { dtype: "BF16", shape: [2], data: Uint16Array.of(0x3f80, 0xc000) }],
    ["big", { shape: [1], data: BigInt64Array.of(-(2n ** 40n)) }],
    ["bytes", { dtype: "BOOL", shape: [2], data: Uint8Array.of(1, 0) }],
  ]);
  const bytes = serializeSafetensors(tensors, { format: "pt", note: "ünïcode" });
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  equal((8 + headerLen) % 8, 0, "data starts 8-byte aligned");
  const parsed = parseSafetensors(bytes);
  deepEqual(parsed.metadata, { format: "pt", note: "ünïcode" });
  deepEqual([...parsed.tensors.keys()], [...tensors.keys()]);
  for (const [name, t] of tensors) {
    const p = parsed.tensors.get(name)!;
    deepEqual(p.shape, t.shape, name);
    deepEqual(Array.from(p.data as ArrayLike<unknown>), Array.from(t.data as ArrayLike<unknown>));
    equal(p.data.constructor, t.data.constructor, name);
  }
  equal(parsed.tensors.get("half")!.dtype, "BF16");
  // a subarray view serializes only its own elements
  const base = Float32Array.of(9, 1, 2, 9);
  const view = parseSafetensors(
    serializeSafetensors(new Map([["v", { shape: [2], data: base.subarray(1, 3) }]])),
  );
  deepEqual(Array.from(view.tensors.get("v")!.data as Float32Array), [1, 2]);
});

Deno.test("safetensors: exact byte layout", () => {
  const bytes = serializeSafetensors(
    new Map([["a", { shape: [2], data: Float32Array.of(1, -2) }]]),
  );
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const padded = json + " ".repeat((8 - ((8 + json.length) % 8)) % 8);
  const expected = new Uint8Array(8 + padded.length + 8);
  new DataView(expected.buffer).setBigUint64(0, BigInt(padded.length), true);
  expected.set(new TextEncoder().encode(padded), 8);
  expected.set(new Uint8Array(Float32Array.of(1, -2).buffer), 8 + padded.length);
  deepEqual(Array.from(bytes), Array.from(expected));
});

Deno.test("safetensors: corrupt and truncated files give clear errors", () => {
  const good = serializeSafetensors(
    new Map([
      ["a", { shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }],
      ["b", { shape: [3], data: Int32Array.of(1, 2, 3) }],
    ]),
  );
  const n = Number(new DataView(good.buffer).getBigUint64(0, true));
  const withHeader = (h: string) => {
    const hb = new TextEncoder().encode(h);
    const out = new Uint8Array(8 + hb.length + (good.length - 8 - n));
    new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
    out.set(hb, 8);
    out.set(good.subarray(8 + n), 8 + hb.length);
    return out;
  };
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 5), /shorter than the 8-byte header length/],
    [good.subarray(0, 20), /truncated/],
    [good.subarray(0, good.length - 3), /need 28 data bytes but the file has 25 \(truncated\)/],
    [Uint8Array.from([...good, 0, 0]), /2 bytes after the last tensor/],
    [withHeader("{not json"), /header is not UTF-8 JSON/],
    [withHeader("[1,2]"), /not a JSON object/],
    [
      withHeader('{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}'),
      /needs 16 bytes, data_offsets span 12/,
    ],
    [
      withHeader('{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}'),
      /unsupported dtype "Q4"/,
    ],
    [
      withHeader(
        '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},' +
          '"b":{"dtype":"I32","shape":[3],"data_offsets":[12,24]}}',
      ),
      /starts at byte 12, expected 16 \(tensors overlap or leave a hole\)/,
    ],
    [
      withHeader(
        '{"__metadata__":{"x":1},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}',
      ),
      /__metadata__.x is not a string/,
    ],
  ];
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  cases.push([huge, /exceeds 100000000 bytes/]);
  for (const [bytes, pattern] of cases) {
    throws(() => parseSafetensors(bytes, "x.safetensors"), (e: Error) => {
      ok(e instanceof SafetensorsError, e.message);
      ok(e.message.startsWith("x.safetensors: not a valid safetensors file: "), e.message);
      ok(pattern.test(e.message), `${pattern} vs ${e.message}`);
      return true;
    });
  }
  throws(
    () => serializeSafetensors(new Map([["a", { shape: [3], data: new Float32Array(2) }]])),
    /shape \[3\] holds 3 elements but the data has 2/,
  );
  throws(
    () => serializeSafetensors(new Map([["a", { shape: [1], data: new Uint16Array(1) }]])),
    /ambiguous \(F16 or BF16\)/,
  );
});

Deno.test("safetensors: atomic file writes, overwrite, read back", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "t.safetensors");
    await writeSafetensors(path, new Map([["x", { shape: [1], data: Float32Array.of(1) }]]));
    await writeSafetensors(path, new Map([["y", { shape: [2], data: Float32Array.of(2, 3) }]]));
    deepEqual(await readdir(dir), ["t.safetensors"]);
    const f = await readSafetensors(path);
    deepEqual([...f.tensors.keys()], ["y"]);
    deepEqual(Array.from(f.tensors.get("y")!.data as Float32Array), [2, 3]);
    await writeFile(path, (await readFile(path)).subarray(0, 30));
    await rejects(readSafetensors(path), (e: Error) => {
      ok(e.message.includes(path) && e.message.includes("truncated"), e.message);
      return true;
    });
  });
});

function makeRun(step: number): RunState {
  const config = getPreset("gemma2-tiny");
  const model: TensorMap = new Map();
  const expAvg: TensorMap = new Map();
  const expAvgSq: TensorMap = new Map();
  parameterShapes(config).forEach((p, i) => {
    const n = shapeSize(p.shape);
    model.set(p.name, { shape: p.shape, data: randomF32(n, 3 * i + 1) });
    expAvg.set(p.name, { shape: p.shape, data: randomF32(n, 3 * i + 2) });
    expAvgSq.set(p.name, { shape: p.shape, data: randomF32(n, 3 * i + 3).map(Math.abs) });
  });
  const stream = new WindowStream(Array.from({ length: 500 }, (_, i) => i % 97), {
    seqLen: 16,
    seed: 5,
  });
  for (let i = 0; i < 7; i++) stream.next();
  return {
    model,
    optimizer: { step, expAvg, expAvgSq },
    info: {
      step,
      data: { ...stream.state() },
      rng: { seed: 42, counter: 1234 },
      config,
      extra: { lr: 3e-4, losses: [5.1, 4.9] },
    },
  };
}

function assertMapsEqual(a: TensorMap, b: TensorMap, what: string) {
  deepEqual([...a.keys()], [...b.keys()], what);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    deepEqual(u.shape, t.shape, `${what} ${name}`);
    ok(u.data instanceof Float32Array, `${what} ${name} is Float32Array`);
    deepEqual(new Uint8Array(u.data.buffer), new Uint8Array(t.data.buffer), `${what} ${name}`);
  }
}

Deno.test("run state: save/load round trip is bit-exact and resumes the data stream", async () => {
  await withTempDir(async (dir) => {
    const run = makeRun(12);
    const runDir = join(dir, "run");
    await saveRunState(runDir, run);
    deepEqual((await readdir(runDir)).sort(), Object.values(RUN_FILES).sort());
    const loaded = await loadRunState(runDir);
    assertMapsEqual(run.model, loaded.model, "model");
    assertMapsEqual(run.optimizer.expAvg, loaded.optimizer.expAvg, "exp_avg");
    assertMapsEqual(run.optimizer.expAvgSq, loaded.optimizer.expAvgSq, "exp_avg_sq");
    equal(loaded.optimizer.step, 12);
    deepEqual(loaded.info, run.info);
    // HF names in the weights file, moments named <name>.exp_avg(_sq)
    const opt = await readSafetensors(join(runDir, RUN_FILES.optimizer));
    ok(opt.tensors.has("model.layers.1.mlp.down_proj.weight.exp_avg_sq"));
    equal((await readSafetensors(join(runDir, RUN_FILES.model))).metadata.format, "pt");
    // the restored stream continues where the saved one was
    const tokens = Array.from({ length: 500 }, (_, i) => i % 97);
    const original = new WindowStream(tokens, { seqLen: 16, seed: 5 });
    for (let i = 0; i < 7; i++) original.next();
    const resumed = new WindowStream(tokens, { seqLen: 16, seed: 5 });
    resumed.restore(loaded.info.data as unknown as ReturnType<WindowStream["state"]>);
    deepEqual(resumed.next(), original.next());
    // saving again over the same directory replaces it
    await saveRunState(runDir, makeRun(13));
    equal((await loadRunState(runDir)).info.step, 13);
  });
});

Deno.test("run state: clear errors for corrupt, interrupted or mismatched runs", async () => {
  await withTempDir(async (dir) => {
    const runDir = join(dir, "run");
    await rejects(loadRunState(runDir), /cannot read .*state\.json.*saveRunState/);
    await saveRunState(runDir, makeRun(3));
    // corrupt weights file
    const modelPath = join(runDir, RUN_FILES.model);
    const bytes = await readFile(modelPath);
    await writeFile(modelPath, bytes.subarray(0, bytes.length - 100));
    await rejects(loadRunState(runDir), (e: Error) => {
      ok(e instanceof SafetensorsError, e.message);
      ok(e.message.includes("model.safetensors") && e.message.includes("truncated"), e.message);
      return true;
    });
    await writeFile(modelPath, bytes);
    // interrupted save: state.json from another step
    const statePath = join(runDir, RUN_FILES.state);
    const state = JSON.parse(await readFile(statePath, "utf8"));
    await writeFile(statePath, JSON.stringify({ ...state, step: 4 }));
    await rejects(loadRunState(runDir), /from step 3, .* from step 4 \(a save was interrupted/);
    await writeFile(statePath, JSON.stringify({ ...state, format: "other" }));
    await rejects(loadRunState(runDir), /has format "other"/);
  });
  // mismatches are refused before anything is written
  const run = makeRun(1);
  run.model.delete("model.norm.weight");
  await rejects(saveRunState("/nonexistent/never", run), /missing model\.norm\.weight \[64\]/);
  const run2 = makeRun(1);
  run2.optimizer.expAvg.delete("lm_head.weight");
  run2.optimizer.expAvg.delete("model.embed_tokens.weight");
  await rejects(
    saveRunState("/nonexistent/never", run2),
    /missing model\.embed_tokens\.weight\.exp_avg/,
  );
  const run3 = makeRun(1);
  run3.optimizer.step = 2;
  await rejects(
    saveRunState("/nonexistent/never", run3),
    /optimizer step 2 differs from run step 1/,
  );
});

/**
 * PEFT's adapter layout (lib/checkpoint/peft_adapter.ts) and the `--lora` parser
 * (lib/nn/lora_options.ts): bit-exact round trips from the device, PEFT's keys and config
 * text, and clear errors on bad files and options.
 */

import assert from "node:assert/strict";
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadLoraAdapter,
  loadLoraLayers,
  type LoraAdapterConfig,
  parsePeftConfig,
  peftConfigJson,
  readLoraLayers,
  saveLoraAdapter,
  saveLoraLayers,
} from "../lib/checkpoint/peft_adapter.ts";
import { readSafetensors, writeSafetensors } from "../lib/checkpoint/safetensors.ts";
import type { Device } from "../lib/device/device.ts";
import { MetaDevice } from "../lib/device/meta.ts";
import { LoraLinear } from "../lib/nn/lora.ts";
import {
  formatLoraOptions,
  loraModuleNames,
  parseLoraOptions,
  peftTargetModules,
} from "../lib/nn/lora_options.ts";
import { Parameter } from "../lib/nn/parameter.ts";
import { randomArray } from "../lib/testing/all_close.ts";
import { gpuTest, testDevice, testDeviceF16 } from "../lib/testing/gpu.ts";

const CONFIG: LoraAdapterConfig = {
  r: 4,
  loraAlpha: 16,
  loraDropout: 0,
  targetModules: ["q_proj", "down_proj"],
  useRslora: false,
  baseModelNameOrPath: "meta-llama/Llama-3.1-8B",
};

/** Two adapted modules (q_proj (12, 8), down_proj (8, 20)) with random adapters. */
function layers(dev: Device, seed: number): LoraLinear[] {
  const out: LoraLinear[] = [];
  for (
    const [name, N, K] of [["model.layers.0.self_attn.q_proj", 12, 8], [
      "model.layers.1.mlp.down_proj",
      8,
      20,
    ]] as const
  ) {
    const base = new Parameter(`${name}.weight`, dev.zeros([N, K], { tag: "weights", name }));
    const l = LoraLinear.create(dev, name, base, { r: CONFIG.r, alpha: CONFIG.loraAlpha, seed });
    if (dev.kind !== "meta") {
      // B away from its zero init, so both matrices carry information
      const b = Float32Array.from(randomArray(N * CONFIG.r, seed + N));
      if (l.b.master) dev.write(l.b.master, b);
      dev.write(l.b.value, b);
    }
    out.push(l);
  }
  return out;
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

for (const precision of ["f32", "f16"] as const) {
  Deno.test(
    `LoRA adapters round-trip bit-exactly through PEFT's layout (${precision} device)`,
    gpuTest,
    async (t) => {
      let dev: Device;
      try {
        dev = precision === "f32" ? await testDevice() : await testDeviceF16();
      } catch (e) {
        await t.step({ name: `skipped: ${(e as Error).message}`, ignore: true, fn: () => {} });
        return;
      }
      const dir = await Deno.makeTempDir({ prefix: "mst-lora-" });
      try {
        const src = layers(dev, 1);
        await saveLoraLayers(dev, dir, CONFIG, src);
        // the files, as PEFT writes them
        const st = await readSafetensors(`${dir}/${ADAPTER_WEIGHTS_FILE}`);
        assert.deepEqual(st.metadata, { format: "pt" });
        assert.deepEqual([...st.tensors.keys()], [
          "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
          "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
          "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
          "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight",
        ]);
        assert.deepEqual([...st.tensors.values()].map((x) => [x.dtype, x.shape]), [
          ["F32", [4, 8]],
          ["F32", [12, 4]],
          ["F32", [4, 20]],
          ["F32", [8, 4]],
        ]);
        const cfg = JSON.parse(await Deno.readTextFile(`${dir}/${ADAPTER_CONFIG_FILE}`));
        assert.equal(cfg.peft_type, "LORA");
        assert.equal(cfg.task_type, "CAUSAL_LM");
        assert.equal(cfg.bias, "none");
        assert.deepEqual([cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.use_rslora], [
          4,
          16,
          0,
          false,
        ]);
        // into fresh layers (other seed): every bit comes back, masters included
        const dst = layers(dev, 2);
        const before = await readLoraLayers(dev, dst);
        assert.notDeepEqual(
          bits(before.get(src[0].name)!.a.data),
          bits((await readLoraLayers(dev, src)).get(src[0].name)!.a.data),
        );
        loadLoraLayers(dev, dst, await loadLoraAdapter(dir));
        const want = await readLoraLayers(dev, src);
        const got = await readLoraLayers(dev, dst);
        for (const [m, w] of want) {
          assert.deepEqual(bits(got.get(m)!.a.data), bits(w.a.data), `${m} A`);
          assert.deepEqual(bits(got.get(m)!.b.data), bits(w.b.data), `${m} B`);
        }
        if (precision === "f16") {
          // the f16 working copies too
          for (const [i, l] of dst.entries()) {
            assert.deepEqual(await dev.read(l.a.value), await dev.read(src[i].a.value));
          }
        }
        for (const l of [...src, ...dst]) {
          for (const p of [l.a, l.b, l.base as Parameter]) p.dispose();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

Deno.test("adapter_config.json is the text Python's json.dumps(indent=2, sort_keys=True) writes", async (t) => {
  const text = peftConfigJson({ ...CONFIG, loraAlpha: 16, useRslora: true });
  assert.match(text, /"lora_alpha": 16,\n/);
  assert.match(text, /"lora_dropout": 0\.0,\n/);
  assert.deepEqual(parsePeftConfig(text), { ...CONFIG, useRslora: true });
  assert.match(peftConfigJson({ ...CONFIG, loraAlpha: 0.5 }), /"lora_alpha": 0\.5,\n/);
  // json.load reads 0.0 as a float and 16 as an int, so Python writes back what PEFT would
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("python3", {
      args: [
        "-c",
        "import json,sys; print(json.dumps(json.load(sys.stdin), indent=2, sort_keys=True), end='')",
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
  } catch {
    await t.step({ name: "skipped the comparison: no python3", ignore: true, fn: () => {} });
    return;
  }
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  assert.equal(new TextDecoder().decode(out.stdout), text);
});

Deno.test("adapter files: clear errors on bad configs, keys, shapes and mismatched layers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mst-lora-bad-" });
  try {
    const cfg = (over: Record<string, unknown>) =>
      JSON.stringify({ ...JSON.parse(peftConfigJson(CONFIG)), ...over });
    assert.throws(() => parsePeftConfig("{"), /not valid JSON/);
    assert.throws(
      () => parsePeftConfig(cfg({ peft_type: "IA3" })),
      /peft_type: "IA3" is not a LoRA adapter/,
    );
    assert.throws(() => parsePeftConfig(cfg({ use_dora: true })), /use_dora: DoRA/);
    assert.throws(() => parsePeftConfig(cfg({ bias: "all" })), /bias: "all": only "none"/);
    assert.throws(
      () => parsePeftConfig(cfg({ rank_pattern: { q_proj: 8 } })),
      /rank_pattern: per-module/,
    );
    assert.throws(
      () => parsePeftConfig(cfg({ target_modules: ".*proj" })),
      /target_modules: a regular expression/,
    );
    assert.throws(() => parsePeftConfig(cfg({ r: 0 })), /r must be a positive integer/);
    assert.throws(
      () => parsePeftConfig(cfg({ lora_alpha: "16" })),
      /lora_alpha: missing or not a number/,
    );

    const ok = {
      a: { shape: [4, 3] as [number, number], data: new Float32Array(12) },
      b: { shape: [5, 4] as [number, number], data: new Float32Array(20) },
    };
    await assert.rejects(
      saveLoraAdapter(
        dir,
        CONFIG,
        new Map([["m", { ...ok, b: { shape: [5, 3], data: new Float32Array(15) } }]]),
      ),
      /module "m": lora_A must be \(r = 4, in\) and lora_B \(out, r = 4\)/,
    );
    await assert.rejects(loadLoraAdapter(`${dir}/none`), /cannot read adapter_config\.json/);
    await saveLoraAdapter(dir, CONFIG, new Map([["model.layers.0.self_attn.q_proj", ok]]));
    const good = await loadLoraAdapter(dir);
    assert.equal(good.adapters.size, 1);
    // a stray key, a lone A, a BF16 file
    const w = `${dir}/${ADAPTER_WEIGHTS_FILE}`;
    await writeSafetensors(w, new Map([["base_model.model.model.layers.0.q_proj.weight", ok.a]]));
    await assert.rejects(
      loadLoraAdapter(dir),
      /unexpected tensor "base_model\.model\.model\.layers\.0\.q_proj\.weight"/,
    );
    await writeSafetensors(w, new Map([["base_model.model.x.lora_A.weight", ok.a]]));
    await assert.rejects(loadLoraAdapter(dir), /module "x" has lora_A but no lora_B/);
    const bf = (n: number) => ({
      dtype: "BF16" as const,
      data: Uint16Array.from({ length: n }, () => 0x3fc0),
    });
    await writeSafetensors(
      w,
      new Map([
        ["base_model.model.x.lora_A.weight", { shape: [4, 3], ...bf(12) }],
        ["base_model.model.x.lora_B.weight", { shape: [5, 4], ...bf(20) }],
      ]),
    );
    const fromBf16 = await loadLoraAdapter(dir);
    assert.ok(fromBf16.adapters.get("x")!.a.data.every((v) => v === 1.5), "BF16 0x3fc0 = 1.5");
    // layers that do not match the file
    const dev = new MetaDevice();
    const base = new Parameter("x.weight", dev.zeros([5, 3], { tag: "weights", name: "x" }));
    const other = LoraLinear.create(dev, "y", base, { r: 4, alpha: 16, seed: 1 });
    assert.throws(() => loadLoraLayers(dev, [other], fromBf16), /no adapter for module "y"/);
    const x8 = LoraLinear.create(dev, "x", base, { r: 4, alpha: 8, seed: 1 });
    assert.throws(
      () => loadLoraLayers(dev, [x8], fromBf16),
      /scaling 4 .* differs from the layer's 2/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--lora parsing: forms, defaults and errors naming the bad key", () => {
  const all = ["q", "k", "v", "o", "gate", "up", "down"];
  assert.deepEqual(parseLoraOptions("r=32,alpha=16,targets=all"), {
    r: 32,
    alpha: 16,
    targets: all,
    rslora: false,
    scaling: 0.5,
  });
  assert.deepEqual(parseLoraOptions("r=16,alpha=16").targets, all, "targets default to all");
  const o = parseLoraOptions("alpha=16, targets=v,q,down, r=64, rslora");
  assert.deepEqual([o.targets, o.r, o.rslora, o.scaling], [["q", "v", "down"], 64, true, 2]);
  assert.equal(parseLoraOptions("r=8,alpha=8,targets=q,rslora=false,dropout=0").rslora, false);
  assert.equal(formatLoraOptions(o), "r=64,alpha=16,targets=q,v,down,rslora");
  assert.deepEqual(parseLoraOptions(formatLoraOptions(o)), o);
  assert.deepEqual(peftTargetModules(o.targets), ["q_proj", "v_proj", "down_proj"]);
  assert.deepEqual(loraModuleNames(2, ["q", "down"]), [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.mlp.down_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.mlp.down_proj",
  ]);
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["alpha=16", /key "r" is required/],
    ["r=8", /key "alpha" is required/],
    ["r=8.5,alpha=16", /r=8\.5 must be a positive integer/],
    ["r=x,alpha=16", /r=x is not a number/],
    ["r=8,alpha=-1", /alpha=-1 must be > 0/],
    ["r=8,alpha=16,rank=4", /unknown key "rank"; keys are r, alpha, targets, rslora, dropout/],
    [
      "r=8,alpha=16,targets=q,qkv",
      /targets: unknown layer "qkv"; use all or a subset of q, k, v, o, gate, up, down/,
    ],
    ["r=8,alpha=16,targets=all,q", /"all" cannot be combined/],
    ["r=8,alpha=16,targets=q,q", /"q" given twice/],
    ["r=8,r=16,alpha=16", /key "r" given twice/],
    ["r=8,alpha=16,dropout=0.05", /dropout=0\.05: only 0 is supported/],
    ["r=8,alpha=16,rslora=yes", /rslora=yes must be true or false/],
    ["r=8,,alpha=16", /empty item/],
    ["r=8,alpha=16,fast", /"fast" is not key=value/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseLoraOptions(text), re, text);
});

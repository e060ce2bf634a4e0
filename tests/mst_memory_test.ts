/**
 * What MsT saves, measured through the allocator on the meta device (the same allocations
 * as WebGPU, checked in device_test.ts): chunked logits, chunked MLP transients, and what
 * recomputation keeps between forward and backward.
 */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import { getPreset } from "../lib/config/presets.ts";
import type { MemoryPolicy } from "../lib/techniques/policy.ts";
import { runSteps } from "../lib/train/run_steps.ts";

const cfg = getPreset("llama3-tiny"); // d=64, I=224, V=2048, L=2

function batch(S: number) {
  const ids = Int32Array.from({ length: S }, (_, i) => (i * 31) % cfg.vocabSize);
  return { ids, targets: ids };
}

async function stepTimeline(S: number, policy: MemoryPolicy) {
  const dev = new MetaDevice();
  dev.allocator.startTimeline();
  const r = await runSteps(dev, cfg, policy, batch(S), { steps: 1 });
  return { events: dev.allocator.stopTimeline(), peak: r.peakBytes };
}

Deno.test("MsT head: the largest logits allocation is ⌈S/M⌉·V·4 bytes", async () => {
  const S = 1000;
  for (const M of [1, 3, 8]) {
    const { events } = await stepTimeline(S, { mst: { head: M } });
    const largest = Math.max(
      ...events.filter((e) => e.kind === "alloc" && e.tag === "logits").map((e) => e.bytes),
    );
    assert.equal(largest, Math.ceil(S / M) * cfg.vocabSize * 4, `M=${M}`);
  }
  const { events } = await stepTimeline(S, {});
  const std = Math.max(
    ...events.filter((e) => e.kind === "alloc" && e.tag === "logits").map((e) => e.bytes),
  );
  assert.equal(std, S * cfg.vocabSize * 4);
});

Deno.test("MsT MLP: the (rows, I) transients scale with S/M, not S", async () => {
  const S = 1024;
  const widest = (events: { kind: string; name: string; bytes: number }[]) =>
    Math.max(
      ...events.filter((e) => e.kind === "alloc" && /mlp\.(gate|up)$/.test(e.name)).map((e) =>
        e.bytes
      ),
    );
  const base = widest((await stepTimeline(S, { checkpoint: true })).events);
  assert.equal(base, S * cfg.intermediate * 4);
  for (const M of [2, 4, 16]) {
    const w = widest((await stepTimeline(S, { checkpoint: true, mst: { mlp: M } })).events);
    assert.equal(w, Math.ceil(S / M) * cfg.intermediate * 4, `M=${M}`);
  }
});

Deno.test("recomputation keeps S·d·4 bytes per block from forward to backward", async () => {
  const S = 512;
  const { events } = await stepTimeline(S, { checkpoint: true });
  // At the end of the forward phase: what is still live from forward, by tag.
  const fwdEnd = events.findIndex((e) => e.phase === "backward");
  const live = new Map<number, { tag: string; bytes: number }>();
  for (const e of events.slice(0, fwdEnd)) {
    if (e.kind === "alloc") live.set(e.id, { tag: e.tag, bytes: e.bytes });
    else if (e.kind === "free") live.delete(e.id);
    else live.get(e.id)!.tag = e.tag;
  }
  const byTag = (t: string) =>
    [...live.values()].filter((x) => x.tag === t).reduce((a, x) => a + x.bytes, 0);
  assert.equal(byTag("checkpoints"), cfg.layers * S * cfg.hidden * 4);
});

Deno.test("peak bytes: MsT + recomputation < recomputation < standard at S=2048", async () => {
  const S = 2048;
  const std = (await stepTimeline(S, {})).peak;
  const ckpt = (await stepTimeline(S, { checkpoint: true })).peak;
  const mst =
    (await stepTimeline(S, { checkpoint: true, mst: { mlp: "auto", head: "auto" } })).peak;
  assert.ok(ckpt < std, `checkpoint ${ckpt} vs standard ${std}`);
  assert.ok(mst < ckpt, `mst ${mst} vs checkpoint ${ckpt}`);
});

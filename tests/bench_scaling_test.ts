/**
 * The bench's `scaling` group runs against this checkout (and, with `--base`, another one):
 * both policies train at a short S, rows carry the MsT / standard ratio and dispatch counts.
 */

import assert from "node:assert/strict";
import { benchScaling, loadTree } from "../lib/bench/scaling.ts";
import { gpuTest } from "../lib/testing/gpu.ts";

Deno.test(
  "bench scaling: this checkout's two policies train at S=64 and give a ratio row",
  gpuTest,
  async () => {
    const ours = await loadTree(new URL("..", import.meta.url).pathname, "ours");
    const rows = await benchScaling(() => {}, {
      seqs: [64],
      steps: 1,
      trees: [ours],
      profile: false,
    });
    assert.ok(rows.length >= 2, `rows: ${JSON.stringify(rows)}`);
    for (const r of rows) {
      assert.ok(Number.isFinite(r.ms) && r.ms > 0, `${r.name}: ms ${r.ms}`);
      assert.ok(Number.isFinite(r.value) && r.value > 0, `${r.name}: value ${r.value}`);
    }
    assert.ok(rows.some((r) => /MsT/.test(r.name)), rows.map((r) => r.name).join(", "));
  },
);

/**
 * The golden file (tests/fixtures/golden.jsonl, `deno task golden`) holds: plans byte for byte,
 * training losses to 1e-6. The suite checks every plan case, every loss case and the paper's
 * max-S searches (llama3-8b, llama2-7b); `deno task golden` checks all of it, and
 * MST_GOLDEN_FULL=1 makes this test do the same.
 */

import assert from "node:assert/strict";
import {
  computeGolden,
  firstDifference,
  goldenCases,
  type GoldenLine,
  readGolden,
  sectionOf,
} from "../tasks/golden.ts";
import { gpuTest } from "../lib/testing/gpu.ts";

const golden = new Map((await readGolden()).map((l) => [l.key, l.value]));
const full = Deno.env.get("MST_GOLDEN_FULL") === "1";
const inSuite = (key: string) =>
  full || sectionOf(key) === "plans" || sectionOf(key) === "losses" ||
  /^maxseq (llama3-8b|llama2-7b) /.test(key);

Deno.test("the golden file lists exactly the cases the generator makes, in its order", () => {
  const keys = goldenCases().map((c) => c.key);
  assert.deepEqual([...golden.keys()], keys);
  assert.equal(new Set(keys).size, keys.length, "case keys are unique");
});

Deno.test("plans and max-S searches reproduce the golden file byte for byte", async () => {
  const cases = goldenCases(["plans", "maxseq", "alst"]).filter((c) => inSuite(c.key));
  assert.ok(cases.length >= 470, `${cases.length} cases`);
  const differ: string[] = [];
  await computeGolden(cases, (line: GoldenLine) => {
    const d = firstDifference(golden.get(line.key), line.value);
    if (d) differ.push(`${line.key}: ${d}`);
  });
  assert.deepEqual(differ, [], `${differ.length} cases differ (first: ${differ[0]})`);
});

Deno.test("5-step WebGPU losses of the tiny presets match the golden file", gpuTest, async () => {
  const lines = await computeGolden(goldenCases(["losses"]));
  for (const line of lines) {
    const want = golden.get(line.key) as { losses: number[]; peakBytes: number };
    const got = line.value as { losses: number[]; peakBytes: number };
    assert.equal(got.peakBytes, want.peakBytes, `${line.key}: peak bytes`);
    assert.equal(got.losses.length, 5, line.key);
    got.losses.forEach((x, i) =>
      assert.ok(
        Math.abs(x - want.losses[i]) <= 1e-6,
        `${line.key} step ${i}: ${x} vs ${want.losses[i]}`,
      )
    );
  }
});

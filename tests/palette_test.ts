/**
 * One palette for every chart (issue 23): each memory tag has one colour in every chart
 * definition that draws tags, each policy one colour wherever it is drawn, and the tag colours,
 * policy colours, other series' colours and phase colours are disjoint sets.
 */

import assert from "node:assert/strict";
import { TAGS } from "../lib/device/allocator.ts";
import { describePolicy, POLICIES } from "../lib/techniques/policy.ts";
import { chartFromRows } from "../lib/report/chart_defs.ts";
import {
  barsWithReference,
  CHART_HELPERS,
  lossCurves,
  memoryTimeline,
  metricVsSeq,
  stackedPeak,
} from "../lib/report/charts.ts";
import {
  PHASE_COLORS,
  POLICY_COLORS,
  SERIES_PALETTE,
  seriesColors,
  TAG_COLORS,
} from "../lib/report/palette.ts";
import type { MetricRow, VegaLiteSpec } from "../lib/report/json.ts";

/** Every (field, value → colour) a resolved spec's colour scales assign, anywhere in it. */
function colorMaps(spec: unknown, out: Map<string, Map<string, string>> = new Map()) {
  if (Array.isArray(spec)) spec.forEach((s) => colorMaps(s, out));
  else if (spec && typeof spec === "object") {
    for (const [k, v] of Object.entries(spec)) {
      const c = v as { field?: string; scale?: { domain?: unknown; range?: unknown } };
      if (
        k === "color" && c && typeof c.field === "string" && Array.isArray(c.scale?.domain) &&
        Array.isArray(c.scale?.range)
      ) {
        const m = out.get(c.field) ?? new Map<string, string>();
        (c.scale.domain as string[]).forEach((d, i) => m.set(d, (c.scale!.range as string[])[i]));
        out.set(c.field, m);
      } else colorMaps(v, out);
    }
  }
  return out;
}

const POLICY_NAMES = Object.values(POLICIES).map(describePolicy);

Deno.test("every named policy and every tag has a fixed colour; the sets are disjoint", () => {
  for (const p of POLICY_NAMES) assert.ok(POLICY_COLORS[p], `no colour for policy "${p}"`);
  for (const t of [...TAGS, "host"]) assert.ok(TAG_COLORS[t], `no colour for tag "${t}"`);
  const sets = {
    tags: Object.values(TAG_COLORS),
    policies: Object.values(POLICY_COLORS),
    series: [...SERIES_PALETTE],
    phases: Object.values(PHASE_COLORS),
  };
  for (const [name, colors] of Object.entries(sets)) {
    assert.equal(new Set(colors.map((c) => c.toLowerCase())).size, colors.length, `${name} repeat`);
  }
  const names = Object.keys(sets) as (keyof typeof sets)[];
  for (const a of names) {
    for (const b of names.filter((n) => n > a)) {
      const shared = sets[a].filter((c) => sets[b].map((x) => x.toLowerCase()).includes(c));
      assert.deepEqual(shared, [], `${a} and ${b} share colours`);
    }
  }
  // a name the workbench does not fix gets a series colour, never a tag or policy colour
  const other = seriesColors(["standard", "my ablation", "another one"]);
  assert.equal(other[0], POLICY_COLORS.standard);
  for (const c of other.slice(1)) assert.ok(SERIES_PALETTE.includes(c), c);
});

Deno.test("each tag and each policy has the same colour in every chart definition", () => {
  const policies = POLICY_NAMES;
  const rows: MetricRow[] = [];
  policies.forEach((policy, i) => {
    for (const [j, tag] of TAGS.entries()) {
      rows.push({ kind: "breakdown", policy, tag, bytes: (j + 1) * 2 ** 20, phase: "backward" });
    }
    for (const seq of [128, 256]) {
      rows.push({ kind: "train", policy, seq, tokensPerSec: 100 + i, peakBytes: seq * (i + 1) });
    }
    for (const step of [1, 2]) rows.push({ kind: "loss", policy, step, loss: 3 - step / 10 });
    rows.push({ kind: "max-seq", policy, maxSeq: 1000 * (i + 1), paper: null });
    for (const [index, phase] of ["forward", "backward", "optimizer"].entries()) {
      rows.push({ kind: "timeline", policy, index, liveBytes: 100 + index, phase });
    }
  });
  const of = (kind: string) => rows.filter((r) => r.kind === kind);
  // the policies in another order in some charts: colours follow names, not places
  const reversed = [...policies].reverse();
  const specs: [string, VegaLiteSpec][] = [
    [
      "stackedPeak",
      chartFromRows(
        stackedPeak({ title: "t", y: "policy", stack: "tag", x: "bytes", phase: "phase" }),
        of("breakdown"),
      ),
    ],
    ["metricVsSeq", chartFromRows(metricVsSeq({ title: "t", y: "tokensPerSec" }), of("train"))],
    ["lossCurves", chartFromRows(lossCurves({ title: "t", order: reversed }), of("loss"))],
    [
      "barsWithReference",
      chartFromRows(barsWithReference({ title: "t", x: "policy", y: "maxSeq" }), of("max-seq")),
    ],
    ["memoryTimeline", chartFromRows(memoryTimeline({ title: "t" }), of("timeline"))],
  ];
  assert.deepEqual(specs.map(([h]) => h).sort(), Object.keys(CHART_HELPERS).sort());
  const seen = { tag: new Map<string, string>(), policy: new Map<string, string>() };
  for (const [helper, spec] of specs) {
    for (const [field, map] of colorMaps(spec)) {
      if (field !== "tag" && field !== "policy") continue;
      for (const [name, color] of map as Map<string, string>) {
        const before = seen[field].get(name);
        assert.ok(
          before === undefined || before === color,
          `${helper}: ${field} "${name}" is ${color}, elsewhere ${before}`,
        );
        seen[field].set(name, color);
        const fixed: string = field === "tag" ? TAG_COLORS[name] : POLICY_COLORS[name];
        assert.equal(color, fixed, `${helper}: ${field} "${name}"`);
      }
    }
  }
  assert.equal(seen.tag.size, TAGS.length, "every tag was drawn");
  assert.equal(seen.policy.size, policies.length, "every policy was drawn");
});

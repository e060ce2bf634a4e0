/**
 * Report values: numbers keep their precision (integers exact, 6 significant digits, no lost
 * integer digits), nested summary values are drawn as nested tables in HTML (escaped once,
 * never raw JSON) and as `key: value` text in Markdown, and a long chart title is wrapped
 * instead of widening the SVG.
 */

import assert from "node:assert/strict";
import * as vega from "vega";
import { formatCell, formatNumber } from "../lib/report/format.ts";
import { buildHtml, htmlValue } from "../lib/report/html.ts";
import { buildMarkdown } from "../lib/report/markdown.ts";
import type { RunRecords } from "../lib/report/records.ts";
import type { Json } from "../lib/report/json.ts";
import {
  chartWidth,
  compileVegaLite,
  renderSvg,
  wrapChartTitle,
  wrapText,
} from "../lib/report/render_svg.ts";

Deno.test("numbers: integers exact, 6 significant digits, integer digits never lost", () => {
  const cases: [number, string][] = [
    [41725704, "41725704"],
    [42798852, "42798852"],
    [9007199254740991, "9007199254740991"],
    [-3, "-3"],
    [0, "0"],
    [-0, "0"],
    [3.14159265, "3.14159"],
    [0.5, "0.5"],
    [1.25, "1.25"],
    [123.456789, "123.457"],
    [1234567.891, "1234568"],
    [98765.4321, "98765.4"],
    [0.00123456789, "0.00123457"],
    [-0.000123456, "-0.000123456"],
    [1.234567e-7, "1.23457e-7"],
    [2.5e-10, "2.5e-10"],
    [1e21 + 0.5, "1e+21"],
    [0.1 + 0.2, "0.3"],
    [NaN, "NaN"],
    [Infinity, "Infinity"],
  ];
  for (const [v, s] of cases) assert.equal(formatNumber(v), s, `formatNumber(${v})`);
  assert.equal(formatCell(0.1234567), "0.123457");
  assert.equal(formatCell([128, 256.5, null]), "128, 256.5, —");
  assert.equal(formatCell(["a", "b"]), "a, b");
  assert.equal(formatCell({ a: 1, b: { c: true } }), "a: 1; b: c: yes");
  assert.equal(formatCell([{ p: "mst", x: 2 }, { p: "std" }]), "[p: mst; x: 2]; [p: std]");
});

Deno.test("nested values are tables in HTML, escaped once, never raw JSON", () => {
  const v: Json = {
    policies: [{ name: 'a "quoted" <b>', peak: 1.5 }, { name: "c", peak: 2, extra: [1, 2] }],
    deep: { level: { x: 1 } },
  };
  const html = htmlValue(v);
  assert.ok(!html.includes("{"), html);
  assert.ok(!html.includes("&amp;quot;") && !html.includes("&amp;lt;"), html);
  assert.match(html, /<th>name<\/th><th>peak<\/th><th>extra<\/th>/);
  assert.match(
    html,
    /<td>a &quot;quoted&quot; &lt;b&gt;<\/td><td class="num">1\.5<\/td><td>—<\/td>/,
  );
  assert.match(html, /<td class="num">2<\/td><td>1, 2<\/td>/);
  assert.match(html, /<th>deep<\/th><td><table class="nested"><tr><th>level<\/th>/);
  // very deep values fall back to indented JSON, escaped once
  let deep: Record<string, unknown> = { s: '"x"' };
  for (let i = 0; i < 6; i++) deep = { d: deep };
  const pre = htmlValue(deep as never);
  assert.match(pre, /<pre>\{\n {2}&quot;d&quot;: \{/);
  assert.ok(!pre.includes("&amp;"), pre);
});

const records = (): RunRecords => ({
  dir: "/tmp/x",
  configYaml: "n: 1\n",
  config: { n: 1 },
  metrics: [
    { kind: "m", S: 2048, bytes: 42798852, ratio: 0.123456789, policy: { mst: { head: 1 } } },
  ],
  summary: {
    experiment: "t",
    description: "d",
    device: "meta",
    quick: false,
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:00:01.000Z",
    seconds: 1,
    argv: ["t"],
    figures: {
      big: 41725704.5,
      plan: { maxSeq: 113879, rows: [{ policy: "mst", S: 4096 }, { policy: "std", S: 1024 }] },
    },
    tables: [{ title: "t1", columns: ["a", "b"], rows: [[1.23456789, 123456789]] }],
    notes: [],
    charts: [],
  },
  chartDefs: [],
  charts: [],
});

Deno.test("the HTML and Markdown reports show nested figures and full precision", () => {
  const html = buildHtml(records(), new Map());
  assert.ok(!/\{&quot;|\[\{/.test(html), "raw JSON in the HTML");
  assert.match(html, /<td>plan\.rows<\/td><td><table class="nested"><thead><tr><th>policy<\/th>/);
  assert.match(html, /<td>plan\.maxSeq<\/td><td class="num">113879<\/td>/);
  assert.match(html, /<td>big<\/td><td class="num">41725705<\/td>/);
  assert.match(html, /<td class="num">1\.23457<\/td><td class="num">123456789<\/td>/);
  assert.match(html, /<td class="num">42798852<\/td><td class="num">0\.123457<\/td>/);
  const md = buildMarkdown(records());
  assert.match(md, /\| plan\.rows \| \[policy: mst; S: 4096\]; \[policy: std; S: 1024\] \|/);
  assert.match(md, /\| 1\.23457 \| 123456789 \|/);
  assert.match(md, /\| 2048 \| 42798852 \| 0\.123457 \| mst: head: 1 \|/);
  assert.ok(!md.includes('{"'), "raw JSON in the Markdown");
});

const svgWidth = (svg: string) => Number(svg.match(/^<svg[^>]*\swidth="([\d.]+)"/)![1]);

Deno.test("a long chart title is wrapped, not widening the SVG", async () => {
  assert.deepEqual(wrapText("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
  assert.deepEqual(wrapText("averyveryverylongword x", 5), ["averyveryverylongword", "x"]);
  const base = {
    data: { values: [{ a: 1, b: 2 }, { a: 2, b: 3 }] },
    mark: "line",
    width: 200,
    height: 100,
    encoding: {
      x: { field: "a", type: "quantitative" },
      y: { field: "b", type: "quantitative" },
    },
  };
  const long = "llama3-tiny on webgpu: peak memory against the sequence length for every " +
    "policy of the sweep, with and without MsT";
  const wrapped = wrapChartTitle({ ...base, title: long });
  const lines = wrapped.title as string[];
  assert.ok(Array.isArray(lines) && lines.length >= 3, JSON.stringify(lines));
  assert.equal(lines.join(" "), long);
  assert.ok(lines.every((l) => l.length * 0.8 * 13 <= 200), JSON.stringify(lines));
  assert.deepEqual(wrapChartTitle({ ...base, title: "short" }).title, "short");
  assert.deepEqual(
    (wrapChartTitle({ ...base, title: { text: long, color: "red" } }).title as {
      text: string[];
      color: string;
    }).color,
    "red",
  );
  assert.equal(chartWidth({ spec: { width: 640 }, facet: { row: {} } }), 640);
  assert.equal(chartWidth({ hconcat: [{ width: 100 }, { width: 50 }] }), 150);

  const short = svgWidth(await renderSvg({ ...base, title: "short" }));
  assert.equal(svgWidth(await renderSvg({ ...base, title: long })), short);
  // without wrapping the same title widens the SVG (what the wrap prevents)
  const view = new vega.View(vega.parse(compileVegaLite({ ...base, title: long })), {
    renderer: "none",
  });
  try {
    assert.ok(svgWidth(await view.toSVG()) > short + 200);
  } finally {
    view.finalize();
  }
});

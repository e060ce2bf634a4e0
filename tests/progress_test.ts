/**
 * The terminal view: progress bars with their label, item and ETA, log lines printed cleanly
 * above the bar (checked on the screen of a headless xterm.js), plain output without escape
 * codes when not drawing, and `deno task exp` run under a pseudo-terminal (util-linux
 * `script`) whose final screen has every log line and the closing lines intact.
 */

import assert from "node:assert/strict";
import {
  describeItem,
  formatDuration,
  ProgressDisplay,
  type ProgressStreams,
} from "../lib/experiments/progress.ts";
import { hasScript, renderScreen, runInPty } from "../lib/testing/screen.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Streams writing into one string, as a terminal receives stdout and stderr together. */
function memoryStreams(cols: number): ProgressStreams & { text: () => string } {
  let out = "";
  return {
    bar: (t) => out += t,
    log: (t) => out += t,
    columns: () => cols,
    text: () => out,
  };
}

Deno.test("describeItem: S and policy of sweep items, never [object Object]", () => {
  assert.equal(describeItem(1024), "1024");
  assert.equal(describeItem("standard"), "standard");
  assert.equal(describeItem({ seq: 128, id: "standard", policy: { mst: {} } }), "S=128 standard");
  assert.equal(describeItem({ label: "MsT + recomputation", paper: 60000 }), "MsT + recomputation");
  assert.equal(describeItem({ S: 4096, policy: "mst" }), "S=4096 mst");
  assert.equal(describeItem({ m: 4, auto: true, nested: { a: 1 } }), "m=4 auto=true");
  assert.equal(describeItem([2048, "mst"]), "2048 mst");
  assert.equal(describeItem(null), "");
  for (const x of [{}, { a: {} }, [{}], new Map()]) {
    assert.ok(!describeItem(x).includes("[object"), JSON.stringify(x));
  }
  assert.equal(formatDuration(3_400), "3s");
  assert.equal(formatDuration(125_000), "2m05s");
  assert.equal(formatDuration(3_780_000), "1h03m");
});

Deno.test("progress: log lines go above the bar; the screen ends clean", async () => {
  const s = memoryStreams(60);
  let now = 0;
  const d = new ProgressDisplay(s, { draw: true, now: () => now });
  const bar = d.bar("train", 4);
  now = 1000;
  bar.item("S=128 standard");
  let screen = await renderScreen(s.text(), { cols: 60, rows: 10, convertEol: true });
  assert.deepEqual(screen, ["train [░░░░░░░░░░░░░░░░░░░░░░░░] 0/4 S=128 standard · 1s"]);

  d.print("first log line");
  now = 4000;
  bar.tick();
  bar.item("S=128 MsT");
  screen = await renderScreen(s.text(), { cols: 60, rows: 10, convertEol: true });
  assert.deepEqual(screen, [
    "first log line",
    "train [██████░░░░░░░░░░░░░░░░░░] 1/4 S=128 MsT · 4s eta 12s",
  ]);

  // a nested bar shows the outer one's count; a long line is cut, never wrapped
  const inner = d.bar("loss curve with a very long label that will not fit", 6);
  d.print("second log line");
  screen = await renderScreen(s.text(), { cols: 60, rows: 10, convertEol: true });
  assert.equal(screen.length, 3, screen.join("\n"));
  assert.deepEqual(screen.slice(0, 2), ["first log line", "second log line"]);
  assert.match(screen[2], /^train 1\/4 › loss curve with a very long label that will no…$/);
  assert.equal([...screen[2]].length, 59);
  inner.done();
  bar.tick(undefined, 3);
  bar.done();
  d.print("after the bar");
  assert.equal(d.active, 0);
  screen = await renderScreen(s.text(), { cols: 60, rows: 10, convertEol: true });
  assert.deepEqual(screen, ["first log line", "second log line", "after the bar"]);
  // done twice, and ticks after done, change nothing
  bar.done();
  bar.tick("late");
  assert.deepEqual(await renderScreen(s.text(), { cols: 60, rows: 10, convertEol: true }), screen);
});

Deno.test("progress: console output goes above the bar while one is drawn", async () => {
  const s = memoryStreams(80);
  const d = new ProgressDisplay(s, { draw: true, now: () => 0, hookConsole: true });
  const log = console.log;
  const captured: string[] = [];
  console.log = (...a: unknown[]) => {
    captured.push(a.join(" "));
    s.log(a.join(" ") + "\n");
  };
  try {
    const bar = d.bar("sweep", 2);
    console.log("a warning from a library");
    const screen = await renderScreen(s.text(), { cols: 80, rows: 10, convertEol: true });
    assert.deepEqual(screen[0], "a warning from a library");
    assert.match(screen[1], /^sweep \[░+\] 0\/2 · 0s$/);
    bar.done();
    console.log("after");
    assert.deepEqual(captured, ["a warning from a library", "after"]);
  } finally {
    console.log = log;
  }
});

Deno.test("progress: not drawing prints plain lines, no escape codes", () => {
  const s = memoryStreams(80);
  const d = new ProgressDisplay(s, { draw: false });
  const bar = d.bar("train", 3);
  bar.item("S=128");
  d.print("a line");
  bar.tick();
  bar.done();
  d.print("another");
  assert.equal(s.text(), "a line\nanother\n");
});

Deno.test({
  name: "deno task exp under a pseudo-terminal: bars drawn, log lines and final lines intact",
  ignore: !(await hasScript()),
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "exp-pty-" });
    try {
      const dir = `${out}/run`;
      const cols = 120;
      const { code, output } = await runInPty([
        Deno.execPath(),
        "run",
        "-A",
        "tasks/exp.ts",
        "llama3-long",
        "--quick",
        "--device",
        "meta",
        "--set",
        "planPreset=llama3-tiny",
        "--set",
        "budget=64MiB",
        "--set",
        "breakdownSeq=256",
        "--set",
        "data=repeat",
        "--out",
        dir,
      ], { cols, rows: 40, cwd: ROOT });
      const raw = new TextDecoder().decode(output);
      assert.equal(code, 0, raw);
      // the bars were drawn (this is the terminal path, not the plain one)
      const drawn = raw.split("\r\x1b[2K");
      // llama3-long's sweeps: "plan" (one item per planned policy), then "train" (S × policy)
      assert.ok(drawn.some((l) => /^plan \[[█░]+\] \d+\/\d+ \S/.test(l)), "no plan bar");
      assert.ok(
        drawn.some((l) => /^train \[[█░]+\] \d+\/\d+ S=\d+ \S/.test(l)),
        "no train bar naming S and the policy",
      );
      assert.ok(!raw.includes("[object Object]"), "a bar shows [object Object]");
      const screen = await renderScreen(output, { cols, rows: 40 });
      const text = screen.join("\n");
      // no bar left on the screen, every log line whole, in order
      assert.ok(!/[█░]/.test(text), `a bar was left on the screen:\n${text}`);
      const log = (await Deno.readTextFile(`${dir}/log.txt`)).trimEnd().split("\n");
      assert.ok(log.length >= 10, log.join("\n"));
      const start = screen.indexOf(log[0]);
      assert.ok(start >= 0, `"${log[0]}" is not a line of the screen:\n${text}`);
      assert.deepEqual(screen.slice(start, start + log.length), log);
      // the closing lines, intact
      const tail = screen.slice(start + log.length).filter((l) => l !== "");
      assert.equal(tail.length, 3, text);
      assert.match(tail[0], /^llama3-long finished in \d+\.\d s$/);
      assert.equal(tail[1], `report: ${dir}/report.html and ${dir}/report.md`);
      assert.equal(tail[2], dir);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

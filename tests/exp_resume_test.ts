/**
 * `deno task exp <name> --resume <run dir>`: an interrupted experiment continues from its last
 * finished sweep point — finished points are not run again, their rows are not written twice,
 * torn lines left by a kill are dropped — and ends with the same summary, metrics and log as
 * an uninterrupted run. In process (a failure mid-point, torn lines) and with real kill -9s
 * of a child process; errors for what cannot be resumed.
 */

import assert from "node:assert/strict";
import { runExperiment } from "../lib/experiments/run.ts";
import { JOURNAL_FILE } from "../lib/experiments/journal.ts";
import { readRunRecords, type RunSummary } from "../lib/report/records.ts";
import { rng } from "../lib/util/random.ts";
import { control, resumable } from "./fixtures/resumable_experiment.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const quiet = { print: () => {} };

/** A summary without its timings, command line and machine load (they differ between runs). */
function timingsAside(s: RunSummary) {
  const { startedAt: _s, finishedAt: _f, seconds: _t, argv: _a, load: _l, ...rest } = s;
  return rest;
}

async function withTemp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "exp-resume-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The uninterrupted run's records. */
async function reference(dir: string, set: string[] = []) {
  control.failAt = -1;
  await runExperiment(resumable, { out: dir, device: "meta", set, ...quiet });
  return await readRunRecords(dir);
}

Deno.test("exp resume: a run that failed mid-point, with torn lines, ends like an uninterrupted one", async () => {
  await withTemp(async (tmp) => {
    const ref = await reference(`${tmp}/ref`);
    const dir = `${tmp}/run`;
    control.failAt = 3;
    await assert.rejects(
      runExperiment(resumable, { out: dir, device: "meta", ...quiet }),
      /failing at 3 on purpose/,
    );
    // a kill mid-write would leave torn last lines: they must be dropped
    await Deno.writeTextFile(`${dir}/metrics.jsonl.partial`, '{"kind":"squ', { append: true });
    await Deno.writeTextFile(`${dir}/${JOURNAL_FILE}`, '{"point":"/0:3","swe', { append: true });
    const configYaml = await Deno.readTextFile(`${dir}/config.yaml`);
    control.failAt = -1;
    control.calls = 0;
    const lines: string[] = [];
    const { summary } = await runExperiment(resumable, {
      resume: dir,
      print: (l) => lines.push(l),
    });
    // squares 0-2 were finished: 3-5 run, and the outer sweep (2 + 2 × 2 points)
    assert.equal(control.calls, 3 + 2 + 4);
    assert.match(lines[0], /^resuming .*: 3 finished sweep points, 7 metric rows kept; dropped/);
    const rec = await readRunRecords(dir);
    assert.deepEqual(timingsAside(summary), timingsAside(ref.summary));
    assert.deepEqual(summary.figures, {
      sumOfSquares: 55,
      nanKept: true,
      infKept: true,
      nested: [0, 1, 2, 3, 4, 5],
      outer: [30, 60],
    });
    assert.deepEqual(rec.metrics, ref.metrics);
    assert.deepEqual(rec.charts, ref.charts);
    const log = await Deno.readTextFile(`${dir}/log.txt`);
    const refLog = await Deno.readTextFile(`${tmp}/ref/log.txt`);
    assert.equal(log.split("\n").slice(1).join("\n"), refLog, "the same log after the resume line");
    assert.ok(!(await Deno.stat(`${dir}/error.txt`).catch(() => null)), "error.txt removed");
    assert.equal(await Deno.readTextFile(`${dir}/config.yaml`), configYaml, "config kept");
  });
});

Deno.test("exp resume: what cannot be resumed is refused with the reason", async () => {
  await withTemp(async (tmp) => {
    await reference(`${tmp}/done`);
    await assert.rejects(
      runExperiment(resumable, { resume: `${tmp}/done`, ...quiet }),
      /is a finished run \(it has summary\.json\); nothing to resume/,
    );
    control.failAt = 0;
    await assert.rejects(
      runExperiment(resumable, { out: `${tmp}/failed`, device: "meta", ...quiet }),
    );
    control.failAt = -1;
    await assert.rejects(
      runExperiment(resumable, { resume: `${tmp}/failed`, set: ["n=2"], quick: true, ...quiet }),
      /continues with the config, --quick and device it was started with; drop --quick, --set/,
    );
    const other = { ...resumable, name: "other" };
    await assert.rejects(
      runExperiment(other, { resume: `${tmp}/failed`, ...quiet }),
      /is a run of resumable, not other/,
    );
    await Deno.mkdir(`${tmp}/empty`);
    await assert.rejects(
      runExperiment(resumable, { resume: `${tmp}/empty`, ...quiet }),
      /has no journal\.jsonl: it is not a run directory of deno task exp/,
    );
    // the experiment changed since: its sweep items differ
    control.failAt = 2;
    await assert.rejects(
      runExperiment(resumable, { out: `${tmp}/changed`, device: "meta", ...quiet }),
    );
    control.failAt = -1;
    const changed = await Deno.readTextFile(`${tmp}/changed/${JOURNAL_FILE}`);
    await Deno.writeTextFile(
      `${tmp}/changed/${JOURNAL_FILE}`,
      changed.replace('"item":"1"', '"item":"7"'),
    );
    await assert.rejects(
      runExperiment(resumable, { resume: `${tmp}/changed`, ...quiet }),
      /sweep point \/0:1 was "square" 7 in the interrupted run but is "square" 1 now/,
    );
  });
});

Deno.test("exp resume: killed 3 times with SIGKILL, resumed to the end, same records", async () => {
  const seed = Number(Deno.env.get("CRASH_TEST_SEED") ?? Math.floor(Math.random() * 1e9));
  const random = rng(seed);
  await withTemp(async (tmp) => {
    const set = ["pointMs=120"];
    const ref = await reference(`${tmp}/ref`, set);
    const dir = `${tmp}/run`;
    const story: string[] = [];
    for (let attempt = 0;; attempt++) {
      assert.ok(attempt < 8, `no progress (CRASH_TEST_SEED=${seed}): ${story.join(", ")}`);
      const fresh = !(await Deno.stat(`${dir}/${JOURNAL_FILE}`).catch(() => null));
      const args = fresh ? ["--out", dir, ...set.flatMap((s) => ["--set", s])] : ["--resume", dir];
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "tests/fixtures/resumable_experiment.ts", ...args],
        cwd: ROOT,
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const status = child.status;
      if (story.filter((s) => s.startsWith("killed")).length < 3) {
        // kill as the k-th point starts (k random), some time into it
        // (k ≤ 2: at most 2 of the 8 announced points finish per attempt, so 3 kills
        // always land before the end)
        const k = 1 + Math.floor(random() * 2);
        let seen = 0;
        const dec = new TextDecoder();
        for await (const chunk of child.stderr) {
          seen += (dec.decode(chunk).match(/^point /gm) ?? []).length;
          if (seen >= k) break;
        }
        await new Promise((r) => setTimeout(r, random() * 200));
        try {
          child.kill("SIGKILL");
        } catch {
          // it had finished
        }
        const s = await status;
        story.push(s.signal === "SIGKILL" ? `killed at point ${k}` : `exited ${s.code}`);
        await child.stderr.cancel().catch(() => {});
        continue;
      }
      for await (const _ of child.stderr) {
        // drain: the child reports each point
      }
      const s = await status;
      assert.equal(s.code, 0, `CRASH_TEST_SEED=${seed}: ${story.join(", ")}`);
      story.push("completed");
      break;
    }
    const rec = await readRunRecords(dir);
    const where = `CRASH_TEST_SEED=${seed}: ${story.join(", ")}`;
    assert.deepEqual(timingsAside(rec.summary), timingsAside(ref.summary), where);
    assert.deepEqual(rec.metrics, ref.metrics, where);
  });
});

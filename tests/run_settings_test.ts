/**
 * What `train --resume DIR` takes from the checkpoint and what from the command line:
 * the numbers-changing settings are the checkpoint's (a contradicting flag is refused),
 * `--steps K` means K more steps, no `--steps` finishes the planned run, the schedule can be
 * changed; and the CLI's save/resume errors.
 */

import assert from "node:assert/strict";
import { savedHistory, trainExtra, trainSettings } from "../lib/train/run_settings.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("train settings: a new run takes flags over defaults", () => {
  assert.deepEqual(trainSettings({}, null), {
    data: "repeat",
    seq: 256,
    seed: 1,
    lr: 3e-3,
    totalSteps: 20,
    evalEvery: 20,
    evalBatches: 4,
    saveEvery: null,
  });
  const s = trainSettings({ steps: "30", data: "brown", seq: "64", "save-every": "10" }, null);
  assert.equal(s.totalSteps, 30);
  assert.equal(s.evalEvery, 30);
  assert.equal(s.saveEvery, 10);
  assert.throws(
    () => trainSettings({ "save-every": "0" }, null),
    /--save-every: expected a positive/,
  );
});

Deno.test("train settings: a resumed run keeps its settings; --steps K is K more", () => {
  const first = trainSettings(
    { steps: "30", data: "brown", seq: "64", seed: "7", lr: "0.01", "save-every": "5" },
    null,
  );
  const history = { losses: [3, 2.5], valLosses: [{ step: 0, loss: 3.1 }] };
  const saved = { step: 10, extra: trainExtra(first, history) };
  assert.deepEqual(savedHistory(saved), history);
  // no flags: the same run, to its planned 30 steps
  assert.deepEqual(trainSettings({}, saved), first);
  // K more steps; the schedule may change
  const more = trainSettings({ steps: "4", "save-every": "2", "eval-every": "3" }, saved);
  assert.equal(more.totalSteps, 14);
  assert.equal(more.saveEvery, 2);
  assert.equal(more.evalEvery, 3);
  // the same values again are fine, others are refused with the saved value
  assert.deepEqual(trainSettings({ seq: "64", data: "brown", lr: "0.01" }, saved), first);
  assert.throws(
    () => trainSettings({ seq: "128" }, saved, "--resume r"),
    /--resume r: the run was saved with --seq 64, not 128; drop --seq/,
  );
  assert.throws(() => trainSettings({ data: "repeat" }, saved), /saved with --data brown/);
  assert.throws(() => trainSettings({ seed: "1" }, saved), /saved with --seed 7/);
  assert.throws(() => trainSettings({ lr: "0.02" }, saved), /saved with --lr 0.01/);
  // checkpoints of earlier versions saved only data, seq and seed
  const old = { step: 6, extra: { dataKind: "brown", seq: 64, seed: 3 } };
  const s = trainSettings({ steps: "2" }, old);
  assert.deepEqual([s.data, s.seq, s.seed, s.totalSteps], ["brown", 64, 3, 8]);
  assert.equal(trainSettings({}, old).totalSteps, 6, "no planned total: nothing more to do");
});

async function train(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tasks/train.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("train CLI: save and resume flags are checked before any work", async () => {
  const dir = await Deno.makeTempDir({ prefix: "train-flags-" });
  try {
    let r = await train(["llama3-tiny", "--save-every", "5"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--save-every needs --save DIR/);
    r = await train(["llama3-tiny", "--device", "meta", "--save", dir]);
    assert.match(r.stderr, /the meta device holds no numbers to save/);
    r = await train(["--resume", `${dir}/none`]);
    assert.match(r.stderr, /none holds no checkpoint \(no checkpoint\.json\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The crash-safe checkpoint directory: `checkpoint.json` is the commit point, the previous
 * checkpoint is replaced only after the new one is complete, leftovers of an interrupted save
 * are cleaned, a new run never overwrites another run's checkpoint, and an older flat run
 * directory still loads.
 */

import assert from "node:assert/strict";
import {
  CHECKPOINT_POINTER,
  cleanCheckpointDir,
  commitCheckpoint,
  loadCheckpoint,
  readCheckpointPointer,
  stepDirName,
} from "../lib/checkpoint/checkpoint_dir.ts";
import { RUN_FILES, type RunState, saveRunState } from "../lib/checkpoint/run_state.ts";
import { parameterShapes, shapeSize } from "../lib/config/derived.ts";
import { getPreset } from "../lib/config/presets.ts";
import { CheckpointSaver } from "../lib/train/run_io.ts";
import { rng } from "../lib/util/random.ts";

/** A run state of `gemma2-tiny` at `step` with seeded values. */
function makeState(step: number): RunState {
  const config = getPreset("gemma2-tiny");
  const r = rng(step + 1);
  const t = (shape: number[]) => ({
    shape,
    data: Float32Array.from({ length: shapeSize(shape) }, () => r()),
  });
  const model = new Map(parameterShapes(config).map((p) => [p.name, t(p.shape)]));
  const expAvg = new Map(parameterShapes(config).map((p) => [p.name, t(p.shape)]));
  const expAvgSq = new Map(parameterShapes(config).map((p) => [p.name, t(p.shape)]));
  return {
    model,
    optimizer: { step, expAvg, expAvgSq },
    info: { step, data: { epoch: 0, index: step }, rng: null, config, extra: { note: step } },
  };
}

async function withTemp(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "ckpt-dir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("checkpoint dir: each commit replaces the previous one, through checkpoint.json", async () => {
  await withTemp(async (tmp) => {
    const dir = `${tmp}/run`;
    await assert.rejects(loadCheckpoint(dir), /holds no checkpoint \(no checkpoint\.json\)/);
    const first = await commitCheckpoint(dir, makeState(3));
    assert.equal(first, `${dir}/${stepDirName(3)}`);
    assert.deepEqual(names(dir), [CHECKPOINT_POINTER, "step-00000003"]);
    assert.deepEqual(names(first), Object.values(RUN_FILES).sort());
    await commitCheckpoint(dir, makeState(6));
    assert.deepEqual(names(dir), [CHECKPOINT_POINTER, "step-00000006"]);
    assert.deepEqual(await readCheckpointPointer(dir), {
      format: "mst-checkpoint-v1",
      step: 6,
      path: "step-00000006",
    });
    const loaded = await loadCheckpoint(dir);
    assert.equal(loaded.info.step, 6);
    assert.deepEqual(loaded.info.extra, { note: 6 });
    const w = makeState(6).model.get("model.norm.weight")!.data;
    assert.deepEqual(loaded.model.get("model.norm.weight")!.data, w);
    // the same step again: kept as it is
    const before = (await Deno.stat(`${dir}/step-00000006/${RUN_FILES.model}`)).mtime;
    await commitCheckpoint(dir, makeState(6));
    assert.deepEqual((await Deno.stat(`${dir}/step-00000006/${RUN_FILES.model}`)).mtime, before);
  });
});

Deno.test("checkpoint dir: what an interrupted save leaves is ignored, then cleaned", async () => {
  await withTemp(async (dir) => {
    await commitCheckpoint(dir, makeState(4));
    // a save of step 8 killed before its rename, one killed after it (pointer not yet
    // replaced), and a pointer's temporary file; plus a file of the user's
    await saveRunState(`${dir}/.partial-step-00000008-4242`, makeState(8));
    await saveRunState(`${dir}/step-00000012`, makeState(12));
    await Deno.writeTextFile(`${dir}/checkpoint.json.tmp-4242`, '{"format":');
    await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
    assert.equal((await loadCheckpoint(dir)).info.step, 4, "the committed checkpoint counts");
    assert.deepEqual(await cleanCheckpointDir(dir), [
      ".partial-step-00000008-4242",
      "checkpoint.json.tmp-4242",
      "step-00000012",
    ]);
    assert.deepEqual(names(dir), [CHECKPOINT_POINTER, "notes.txt", "step-00000004"]);
    assert.deepEqual(await cleanCheckpointDir(dir), []);
    // a leftover directory of the very step being saved is replaced
    const stale = makeState(8);
    stale.info.extra = { note: "stale" };
    await saveRunState(`${dir}/step-00000008`, stale);
    await commitCheckpoint(dir, makeState(8));
    assert.deepEqual((await loadCheckpoint(dir)).info.extra, { note: 8 });
    assert.deepEqual(names(dir), [CHECKPOINT_POINTER, "notes.txt", "step-00000008"]);
  });
});

Deno.test("checkpoint dir: bad pointers and mismatches are refused; flat run dirs still load", async () => {
  await withTemp(async (dir) => {
    await commitCheckpoint(`${dir}/a`, makeState(2));
    await Deno.writeTextFile(`${dir}/a/${CHECKPOINT_POINTER}`, '{"format":"x"}');
    await assert.rejects(loadCheckpoint(`${dir}/a`), /is not a mst-checkpoint-v1 pointer/);
    await Deno.writeTextFile(
      `${dir}/a/${CHECKPOINT_POINTER}`,
      '{"format":"mst-checkpoint-v1","step":2,"path":"../../etc"}',
    );
    await assert.rejects(loadCheckpoint(`${dir}/a`), /is not a mst-checkpoint-v1 pointer/);
    await Deno.writeTextFile(`${dir}/a/${CHECKPOINT_POINTER}`, "{");
    await assert.rejects(loadCheckpoint(`${dir}/a`), /checkpoint\.json is not valid JSON/);
    // the layout of earlier versions: one run state at the top
    await saveRunState(`${dir}/flat`, makeState(5));
    assert.equal((await loadCheckpoint(`${dir}/flat`)).info.step, 5);
  });
});

Deno.test("checkpoint saver: a new run never replaces another run's checkpoint", async () => {
  await withTemp(async (dir) => {
    await commitCheckpoint(`${dir}/a`, makeState(3));
    await Deno.mkdir(`${dir}/a/.partial-step-00000006-1`);
    await assert.rejects(
      CheckpointSaver.open(`${dir}/a`, 3),
      /--save .*a: the directory holds a checkpoint at step 3; continue that run with --resume/,
    );
    await assert.rejects(CheckpointSaver.open(`${dir}/a`, 3, `${dir}/b`), /holds a checkpoint/);
    const saver = await CheckpointSaver.open(`${dir}/a`, 3, `${dir}/./a`);
    assert.deepEqual(saver.removed, [".partial-step-00000006-1"]);
    assert.equal(saver.savedStep, 3);
    assert.equal(saver.due(3), false, "step 3 is saved already");
    assert.equal(saver.due(6), true);
    assert.equal(saver.due(7), false);
    const fresh = await CheckpointSaver.open(`${dir}/new`, null);
    assert.equal(fresh.savedStep, null);
    assert.equal(fresh.due(5), false, "no --save-every: only at the end");
  });
});

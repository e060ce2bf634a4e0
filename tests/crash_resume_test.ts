/**
 * `train --save DIR --save-every N` survives kill -9: a run is killed three times (at random
 * steps, and once in the middle of a save), resumed with `train --resume DIR` each time until
 * it completes, and its final checkpoint is bit-identical to the same run done without
 * interruption — plain training and MsT + recomputation, on the Brown corpus.
 *
 * The kill moments are drawn from a seed printed with every failure (`CRASH_TEST_SEED=<n>`
 * replays them).
 */

import assert from "node:assert/strict";
import {
  CHECKPOINT_PAUSE_ENV,
  loadCheckpoint,
  readCheckpointPointer,
  stepDirName,
} from "../lib/checkpoint/checkpoint_dir.ts";
import { RUN_FILES } from "../lib/checkpoint/run_state.ts";
import { rng } from "../lib/util/random.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A `deno run tasks/train.ts` child whose output lines (stdout and stderr) can be awaited. */
class TrainProcess {
  readonly lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  #wake: (() => void)[] = [];
  #done = false;
  readonly #pumps: Promise<void>[];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/train.ts", ...args],
      cwd: ROOT,
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [this.#pump(this.#child.stdout), this.#pump(this.#child.stderr)];
    this.status = Promise.all([this.#child.status, ...this.#pumps]).then(([s]) => {
      this.#done = true;
      this.#notify();
      return s;
    });
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let rest = "";
    for await (const chunk of stream) {
      const parts = (rest + dec.decode(chunk, { stream: true })).split("\n");
      rest = parts.pop()!;
      this.lines.push(...parts);
      this.#notify();
    }
    if (rest) this.lines.push(rest);
  }

  #notify() {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  /** The first line matching `re` (waiting for it); null if the process ends without one. */
  async waitFor(re: RegExp): Promise<RegExpMatchArray | null> {
    for (let seen = 0;;) {
      for (; seen < this.lines.length; seen++) {
        const m = this.lines[seen].match(re);
        if (m) return m;
      }
      if (this.#done) return null;
      await new Promise<void>((r) => this.#wake.push(r));
    }
  }

  /** SIGKILL (no clean-up of any kind in the child), then waits for it to end. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.status;
  }

  /** The output so far, for failure messages. */
  output(): string {
    return this.lines.slice(-30).join("\n");
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function partialDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name.startsWith(".partial-")) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** The JSON line a completed `--json` run ends with. */
function finalJson(p: TrainProcess): { step: number; history: { losses: number[] } } {
  return JSON.parse(p.lines.filter((l) => l.startsWith("{")).at(-1)!);
}

/**
 * Runs `flags` for `total` steps into `dir`, saving every `every` steps, killed three times
 * (the second time inside a save) and resumed until it completes. Returns the final JSON and
 * a log of what happened.
 */
async function interruptedRun(
  flags: string[],
  total: number,
  every: number,
  dir: string,
  random: () => number,
): Promise<{ json: ReturnType<typeof finalJson>; story: string[] }> {
  const story: string[] = [];
  const fresh = [...flags, "--steps", String(total), "--save", dir, "--save-every", String(every)];
  /** Starts the run again: a resume when a checkpoint exists, else from scratch. */
  const start = async (env: Record<string, string> = {}) => {
    const pointer = await readCheckpointPointer(dir);
    const args = pointer ? ["--resume", dir, "--json"] : [...fresh, "--json"];
    story.push(pointer ? `resume from step ${pointer.step}` : "start");
    return { p: new TrainProcess(args, env), from: pointer?.step ?? 0 };
  };
  const pick = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));

  // kill 1: after a random step, a random moment later
  let { p, from } = await start();
  const k1 = pick(from + 1, total - 2);
  assert.ok(await p.waitFor(new RegExp(`^step +${k1} `)), `no step ${k1}:\n${p.output()}`);
  await sleep(random() * 300);
  await p.kill();
  story.push(`killed after step ${k1}`);

  // kill 2: inside a save (paused there), once its partial directory exists
  ({ p, from } = await start({ [CHECKPOINT_PAUSE_ENV]: "60000" }));
  const saving = await p.waitFor(/^saving step (\d+) /);
  assert.ok(saving, `no save:\n${p.output()}`);
  while ((await partialDirs(dir)).length === 0) await sleep(20);
  await p.kill();
  const savingStep = Number(saving[1]);
  story.push(`killed while saving step ${savingStep}`);
  const pointer = await readCheckpointPointer(dir);
  assert.notEqual(pointer?.step, savingStep, "the interrupted save must not be committed");
  assert.equal(pointer?.step ?? 0, savingStep - every, "the previous checkpoint stays committed");
  if (pointer) assert.equal((await loadCheckpoint(dir)).info.step, pointer.step);
  assert.equal((await partialDirs(dir)).length, 1, "the interrupted save left its partial dir");

  // kill 3: at a random step of the next run
  ({ p, from } = await start());
  assert.ok(
    await p.waitFor(/removed what an interrupted save left/),
    `the next start must clean up:\n${p.output()}`,
  );
  const k3 = pick(from + 1, total - 1);
  assert.ok(await p.waitFor(new RegExp(`^step +${k3} `)), `no step ${k3}:\n${p.output()}`);
  await sleep(random() * 300);
  await p.kill();
  story.push(`killed after step ${k3}`);

  // resume until it completes
  for (let attempt = 0;; attempt++) {
    assert.ok(attempt < 3, `the run does not complete:\n${story.join("\n")}`);
    ({ p } = await start());
    const status = await p.status;
    assert.equal(status.code, 0, `${story.join("\n")}\n${p.output()}`);
    const json = finalJson(p);
    if (json.step === total) {
      story.push("completed");
      assert.deepEqual(await partialDirs(dir), []);
      return { json, story };
    }
  }
}

async function crashTest(policy: string[]) {
  const seed = Number(Deno.env.get("CRASH_TEST_SEED") ?? Math.floor(Math.random() * 1e9));
  const tmp = await Deno.makeTempDir({ prefix: "crash-resume-" });
  const total = 12;
  const flags = [
    "llama3-tiny",
    "--data",
    "brown",
    "--seq",
    "64",
    "--eval-batches",
    "1",
    ...policy,
  ];
  try {
    const straight = new TrainProcess([
      ...flags,
      "--steps",
      String(total),
      "--save",
      `${tmp}/straight`,
      "--json",
    ]);
    const [interrupted, status] = await Promise.all([
      interruptedRun(flags, total, 3, `${tmp}/killed`, rng(seed)),
      straight.status,
    ]);
    const where = `CRASH_TEST_SEED=${seed}: ${interrupted.story.join(", ")}`;
    assert.equal(status.code, 0, straight.output());
    // the whole loss history, across three kills, equals the uninterrupted run's
    assert.deepEqual(interrupted.json.history.losses, finalJson(straight).history.losses, where);
    for (const file of [RUN_FILES.model, RUN_FILES.optimizer]) {
      const a = await Deno.readFile(`${tmp}/straight/${stepDirName(total)}/${file}`);
      const b = await Deno.readFile(`${tmp}/killed/${stepDirName(total)}/${file}`);
      assert.ok(a.length > 0 && a.length === b.length, `${file} sizes differ (${where})`);
      assert.ok(a.every((x, i) => x === b[i]), `${file} is not bit-identical (${where})`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test(
  "train: killed 3 times (once inside a save) and resumed, the final model.safetensors is bit-identical",
  async () => {
    // both scenarios at once: on a shared 2-core machine the processes overlap their start-up
    const scenarios = {
      "plain training": [],
      "MsT + recomputation": ["--mst", "auto", "--checkpoint"],
    };
    const results = await Promise.allSettled(Object.values(scenarios).map((p) => crashTest(p)));
    const failed = results.flatMap((r, i) =>
      r.status === "rejected"
        ? [`${Object.keys(scenarios)[i]}: ${(r.reason as Error).message}`]
        : []
    );
    assert.deepEqual(failed, []);
  },
);

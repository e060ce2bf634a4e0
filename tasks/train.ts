/**
 * `deno task train <preset> [--seq S] [--steps N] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
 *   [--checkpoint] [--optimizer-in-backward] [--hf-head] [--device webgpu|meta] [--data repeat|brown]
 *   [--lr X] [--seed N] [--budget 8GiB] [--eval-every N] [--eval-batches N] [--save DIR]
 *   [--resume DIR] [--config f.yaml] [--set key=value]… [--json]`
 *
 * One training run. `--json` ends with one JSON line:
 * `{preset, seq, steps, losses, tokensPerSec, peakBytes, reservedBytes, overheadBytes,
 * rssPeakBytes, breakdown, …}` (reserved: the pool's peak; overhead: the modelled driver bytes;
 * rssPeakBytes: the process's peak resident memory, null off Linux).
 */

import {
  COMMON_OPTIONS,
  parseBudget,
  parseNumber,
  parsePositiveInt,
  parseTaskArgs,
} from "../lib/cli/args.ts";
import { describePolicy, modelSetup } from "../lib/cli/model_options.ts";
import { createDevice } from "../lib/device/create.ts";
import { formatBytes } from "../lib/device/dtype.ts";
import { deviceOverhead, overheadBytes } from "../lib/device/overhead.ts";
import { residentMemory } from "../lib/util/proc_status.ts";
import { Model } from "../lib/models/model.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { runFromState, saveRun } from "../lib/train/run_io.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { loadRunState } from "../lib/checkpoint/run_state.ts";

const USAGE =
  `usage: deno task train <preset> [--seq S] [--steps N] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
  [--checkpoint] [--optimizer-in-backward] [--hf-head] [--device webgpu|meta] [--data repeat|brown]
  [--lr X] [--seed N] [--budget 8GiB] [--eval-every N] [--eval-batches N] [--save DIR]
  [--resume DIR] [--config f.yaml] [--set key=value]... [--json]

  --data repeat   one fixed random sequence, repeated (default; the model must overfit it)
  --data brown    the Brown corpus (train split), validation loss on the validation split
  --resume DIR    continue a run saved with --save DIR (its config; --steps more steps)`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseTaskArgs(argv, {
    ...COMMON_OPTIONS,
    steps: { type: "string" },
    data: { type: "string" },
    lr: { type: "string" },
    seed: { type: "string" },
    budget: { type: "string" },
    "eval-every": { type: "string" },
    "eval-batches": { type: "string" },
    save: { type: "string" },
    resume: { type: "string" },
  }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals.length > 1) {
    throw new Error(`expected one preset, got: ${positionals.join(" ")}\n${USAGE}`);
  }
  const resumeDir = values.resume;
  const saved = resumeDir ? await loadRunState(resumeDir) : null;
  const setup = await modelSetup(positionals[0], values, saved?.info.config);
  const S = parsePositiveInt("--seq", values.seq, 256);
  const steps = parsePositiveInt("--steps", values.steps, 20);
  const seed = parsePositiveInt("--seed", values.seed, 1);
  const lr = parseNumber("--lr", values.lr, 3e-3);
  const dataKind = values.data ?? "repeat";
  const dev = await createDevice(values.device ?? "webgpu");
  dev.setBudget(parseBudget(values.budget));
  const log = (s: string) => values.json ? console.error(s) : console.log(s);
  try {
    const policy = { seed, checkpoint: setup.checkpoint, mst: setup.mst, head: setup.head };
    const loaded = saved ? runFromState(dev, saved, policy) : null;
    const model = loaded?.model ?? Model.build(dev, setup.cfg, policy);
    const trainer = new Trainer(dev, model, {
      adamw: { lr },
      optimizerInBackward: setup.optimizerInBackward,
    });
    loaded?.restoreOptimizer(trainer);
    const data = await makeBatches(dataKind, setup.cfg, S, seed);
    if (loaded) {
      const x = loaded.extra;
      if (x.dataKind !== dataKind || x.seq !== S || x.seed !== seed) {
        throw new Error(
          `--resume ${resumeDir}: the run was saved with --data ${x.dataKind} --seq ${x.seq} ` +
            `--seed ${x.seed}; pass the same flags to continue it exactly`,
        );
      }
      data.restore(loaded.data);
    }
    const evalEvery = parsePositiveInt("--eval-every", values["eval-every"], steps);
    const evalCount = parsePositiveInt("--eval-batches", values["eval-batches"], 4);
    const evalBatches = data.validationBatches?.(evalCount);
    const valLosses: { step: number; loss: number }[] = [];
    const evaluate = async () => {
      if (!evalBatches) return;
      const loss = await model.evaluate(evalBatches);
      valLosses.push({ step: trainer.optimizer.step, loss });
      log(
        `validation loss at step ${trainer.optimizer.step}: ${
          loss.toFixed(4)
        } (${evalBatches.length} windows of ${S})`,
      );
    };
    log(
      `${setup.cfg.name} on ${dev.kind}: S=${S}, ${steps} steps, ${
        describePolicy(setup)
      }, data ${data.description}`,
    );
    await evaluate();
    const losses: number[] = [];
    const times: number[] = [];
    let peak = 0;
    let reserved = 0;
    let breakdown: Record<string, number> = {};
    const liveAfter: number[] = [];
    for (let i = 0; i < steps; i++) {
      const r = await trainer.step(data.next());
      losses.push(r.loss);
      times.push(r.ms);
      liveAfter.push(r.liveBytes);
      reserved = Math.max(reserved, r.reservedBytes);
      if (r.peakBytes > peak) {
        peak = r.peakBytes;
        breakdown = r.breakdown;
      }
      log(
        `step ${String(trainer.optimizer.step).padStart(4)}  loss ${r.loss.toFixed(4)}  ${
          (S / (r.ms / 1000)).toFixed(0)
        } tok/s  peak ${formatBytes(r.peakBytes)}`,
      );
      if ((i + 1) % evalEvery === 0 || i + 1 === steps) await evaluate();
    }
    if (values.save) {
      await saveRun(values.save, trainer, data.state(), { dataKind, seq: S, seed });
      log(`saved the run at step ${trainer.optimizer.step} to ${values.save}`);
    }
    const timed = times.length > 1 ? times.slice(1) : times;
    const tokensPerSec = S * timed.length / (timed.reduce((a, b) => a + b, 0) / 1000);
    const nonzero = Object.fromEntries(Object.entries(breakdown).filter(([, b]) => b > 0));
    log(
      `peak ${formatBytes(peak)}: ` +
        Object.entries(nonzero).map(([t, b]) => `${t} ${formatBytes(b)}`).join(", "),
    );
    const overhead = deviceOverhead(dev);
    const overheadB = overhead ? overheadBytes(overhead, dev.pipelineCount) : null;
    log(
      `reserved (pool) ${formatBytes(reserved)}, driver overhead ${
        overheadB === null ? "not modelled for this adapter" : formatBytes(overheadB)
      } (${dev.pipelineCount} pipelines)`,
    );
    if (values.json) {
      console.log(JSON.stringify({
        preset: setup.cfg.name,
        device: dev.kind,
        seq: S,
        steps,
        policy: describePolicy(setup),
        losses,
        valLosses,
        tokensPerSec,
        peakBytes: peak,
        reservedBytes: reserved,
        pipelines: dev.pipelineCount,
        overheadBytes: overheadB,
        rssPeakBytes: residentMemory()?.peakRssBytes ?? null,
        breakdown,
        liveBytesAfterStep: liveAfter,
      }));
    }
  } finally {
    dev.destroy();
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

/**
 * `deno task train <preset> [--seq S] [--steps N] [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
 *   [--checkpoint] [--optimizer-in-backward] [--hf-head] [--device webgpu|meta] [--data repeat|brown]
 *   [--lr X] [--seed N] [--budget 8GiB] [--eval-every N] [--eval-batches N] [--save DIR]
 *   [--resume DIR] [--config f.yaml] [--set key=value]… [--json]`
 *
 * One training run through the step driver (`lib/train/run_steps.ts`). `--json` ends with one
 * JSON line: `{preset, seq, steps, policy, losses, tokensPerSec, timing, peakBytes, peakPhase,
 * breakdown, chunks, …}` (losses and tokens/s are null on the meta device).
 */

import {
  COMMON_OPTIONS,
  parseBudget,
  parseNumber,
  parsePositiveInt,
  parseTaskArgs,
} from "../lib/cli/args.ts";
import { modelSetup, POLICY_HELP } from "../lib/cli/model_options.ts";
import { createDevice } from "../lib/device/create.ts";
import { formatBytes } from "../lib/device/dtype.ts";
import { Model } from "../lib/models/model.ts";
import { describePolicy } from "../lib/models/policy.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { runFromState, saveRun } from "../lib/train/run_io.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { runSteps } from "../lib/train/run_steps.ts";
import { loadRunState } from "../lib/checkpoint/run_state.ts";

const USAGE =
  `usage: deno task train <preset> [--seq S] [--steps N] [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
  [--checkpoint] [--optimizer-in-backward] [--hf-head] [--device webgpu|meta] [--data repeat|brown]
  [--lr X] [--seed N] [--budget 8GiB] [--eval-every N] [--eval-batches N] [--save DIR]
  [--resume DIR] [--config f.yaml] [--set key=value]... [--json]

  --data repeat   one fixed random sequence, repeated (default; the model must overfit it)
  --data brown    the Brown corpus (train split), validation loss on the validation split
  --resume DIR    continue a run saved with --save DIR (its config; --steps more steps)
${POLICY_HELP}`;

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
    const { policy } = setup;
    const loaded = saved ? runFromState(dev, saved, policy) : null;
    const model = loaded?.model ?? Model.build(dev, setup.cfg, policy, { seed });
    const trainer = new Trainer(dev, model, { adamw: { lr } });
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
        describePolicy(policy)
      }, data ${data.description}`,
    );
    await evaluate();
    const firstStep = trainer.optimizer.step;
    const run = await runSteps(dev, setup.cfg, policy, data, {
      trainer,
      steps,
      onWarning: (w) => log(`warning: ${w}`),
      onStep: async (r) => {
        log(
          `step ${String(r.step).padStart(4)}  loss ${r.loss?.toFixed(4) ?? "n/a (meta)"}  ` +
            `${formatBytes(r.peakBytes)} peak in ${r.peakPhase}` +
            (dev.kind === "meta" ? "" : `  ${(r.tokens / (r.ms / 1000)).toFixed(0)} tok/s`) +
            (r.warmup ? " (warm-up)" : ""),
        );
        const done = r.step - firstStep; // steps of this invocation so far
        if (done % evalEvery === 0 || done === steps) await evaluate();
      },
    });
    if (values.save) {
      await saveRun(values.save, trainer, data.state(), { dataKind, seq: S, seed });
      log(`saved the run at step ${trainer.optimizer.step} to ${values.save}`);
    }
    const nonzero = Object.fromEntries(Object.entries(run.breakdown).filter(([, b]) => b > 0));
    log(
      `peak ${formatBytes(run.peakBytes)} in ${run.peakPhase}: ` +
        Object.entries(nonzero).map(([t, b]) => `${t} ${formatBytes(b)}`).join(", "),
    );
    const t = run.timing;
    log(
      t
        ? `${run.tokensPerSec!.toFixed(0)} tokens/s (median of ${t.timedSteps} steps after ` +
          `${t.warmupSteps} warm-up; step ms min ${t.minMs.toFixed(0)} / median ${
            t.medianMs.toFixed(0)
          } / max ${t.maxMs.toFixed(0)})`
        : dev.kind === "meta"
        ? "tokens/s: none on the meta device (it computes nothing)"
        : "tokens/s: none (no step after the warm-up step; use --steps 2 or more)",
    );
    if (run.chunks.mlp !== null || run.chunks.head !== null) {
      log(
        `mini-sequences run: mlp M=${run.chunks.mlp ?? "off"}, head M=${run.chunks.head ?? "off"}`,
      );
    }
    if (values.json) {
      console.log(JSON.stringify({
        preset: setup.cfg.name,
        device: dev.kind,
        seq: S,
        steps,
        policy: run.policy,
        losses: run.losses,
        valLosses,
        tokensPerSec: run.tokensPerSec,
        timing: run.timing,
        peakBytes: run.peakBytes,
        peakPhase: run.peakPhase,
        phasePeaks: run.phasePeaks,
        breakdown: run.breakdown,
        chunks: run.chunks,
        warnings: run.warnings,
        liveBytesAfterStep: run.steps.map((r) => r.liveBytes),
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

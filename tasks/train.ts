/**
 * `deno task train <preset> [--seq S] [--steps N] [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
 *   [--checkpoint] [--optimizer-in-backward] [--framework ours|hf] [--offload-checkpoints] [--keep-attention]
 *   [--device webgpu|meta] [--dtype f32|f16] [--data repeat|brown]
 *   [--lr X] [--seed N] [--budget 8GiB] [--eval-every N] [--eval-batches N] [--save DIR]
 *   [--save-every N] [--config f.yaml] [--set key=value]… [--json]`
 * `deno task train --resume DIR [--steps K] [--save DIR] [--save-every N] [policy flags] [--json]`
 *
 * One training run through the step driver (`lib/train/run_steps.ts`). `--json` ends with one
 * JSON line: `{preset, seq, steps, step, totalSteps, policy, losses, history, tokensPerSec,
 * timing, peakBytes, reservedBytes, hostPeakBytes, overheadBytes, rssPeakBytes, peakPhase,
 * breakdown, chunks, …}` (losses and tokens/s are null on the meta device; reserved: the pool's peak; overhead: the
 * modelled driver bytes; rssPeakBytes: the process's peak resident memory, null off Linux). Checkpoints (`--save`, `--resume`): `lib/checkpoint/checkpoint_dir.ts`
 * (layout, crash safety) and `lib/train/run_settings.ts` (what a resumed run takes from the
 * checkpoint).
 */

import {
  budgetNote,
  COMMON_OPTIONS,
  parseBudget,
  parseDtype,
  parseTaskArgs,
} from "../lib/cli/args.ts";
import { modelSetup, POLICY_HELP, POLICY_OPTIONS } from "../lib/cli/model_options.ts";
import { createDevice } from "../lib/device/create.ts";
import { formatBytes } from "../lib/device/dtype.ts";
import { deviceOverhead, overheadBytes } from "../lib/device/overhead.ts";
import { residentMemory } from "../lib/util/proc_status.ts";
import { Model } from "../lib/models/model.ts";
import { describePolicy, type MemoryPolicy, validatePolicy } from "../lib/techniques/policy.ts";
import { makeBatches } from "../lib/train/data_source.ts";
import { CheckpointSaver, runFromState } from "../lib/train/run_io.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { runSteps, type RunStepsResult } from "../lib/train/run_steps.ts";
import { loadCheckpoint } from "../lib/checkpoint/checkpoint_dir.ts";
import type { JsonValue } from "../lib/checkpoint/run_state.ts";
import { savedHistory, trainExtra, trainSettings } from "../lib/train/run_settings.ts";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE =
  `usage: deno task train <preset> [--seq S] [--steps N] [--policy NAME] [--mst [M|auto]] [--mst-mlp M] [--mst-head M]
  [--checkpoint] [--optimizer-in-backward] [--framework ours|hf] [--offload-checkpoints] [--keep-attention]
  [--lora r=32,alpha=16,targets=all] [--base-dtype nf4|f16|bf16|f32]
  [--device webgpu|meta] [--dtype f32|f16] [--data repeat|brown]
  [--lr X] [--seed N] [--budget 8GiB] [--eval-every N] [--eval-batches N] [--save DIR]
  [--save-every N] [--config f.yaml] [--set key=value]... [--json]
       deno task train --resume DIR [--steps K] [--save DIR] [--save-every N] [policy flags] [--json]

  --dtype f16     mixed precision: f16 weights' working copies, activations, checkpoints, logits
                  and gradients; f32 master weights, AdamW moments, norms' rstd, attention's
                  lse and losses; dynamic loss scaling (skipped steps are reported). On webgpu
                  it needs the adapter feature shader-f16; --device meta plans the same bytes
                  (bf16 on meta: every float counted as 2 bytes)
  --data repeat   one fixed random sequence, repeated (default; the model must overfit it)
  --data brown    the Brown corpus (train split), validation loss on the validation split
  --save DIR      write a checkpoint into DIR at the end (crash-safe: DIR/checkpoint.json
                  names the latest complete DIR/step-<N>/)
  --save-every N  also every N steps
  --resume DIR    continue the run checkpointed in DIR: its model, data, seq, seed, lr,
                  policy (unless policy flags are given) and schedule; it runs to the run's
                  planned total of steps (--steps K: K more steps instead) and keeps saving
                  into DIR
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
    "save-every": { type: "string" },
    resume: { type: "string" },
    dtype: { type: "string" },
  }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals.length > 1) {
    throw new Error(`expected one preset, got: ${positionals.join(" ")}\n${USAGE}`);
  }
  const resumeDir = values.resume;
  const saved = resumeDir ? await loadCheckpoint(resumeDir) : null;
  const setup = await modelSetup(positionals[0], values, saved?.info.config);
  const savedRun = saved ? { step: saved.info.step, extra: saved.info.extra ?? {} } : null;
  const settings = trainSettings(values, savedRun, `--resume ${resumeDir}`);
  const policyFlags = Object.keys(POLICY_OPTIONS);
  const savedPolicy = savedRun?.extra.policy as MemoryPolicy | undefined;
  if (
    savedPolicy && !policyFlags.some((f) => (values as Record<string, unknown>)[f] !== undefined)
  ) {
    validatePolicy(savedPolicy);
    setup.policy = savedPolicy; // the saved run's policy unless policy flags are given
  }
  // --dtype, else the saved run's; f32 leaves the policy's dtype unset (its usual name).
  const dtype = values.dtype !== undefined ? parseDtype(values.dtype) : savedPolicy?.dtype ?? "f32";
  const { dtype: _saved, ...policyRest } = setup.policy;
  setup.policy = dtype === "f32" ? policyRest : { ...policyRest, dtype };
  validatePolicy(setup.policy);
  const history = savedRun ? savedHistory(savedRun) : { losses: [], valLosses: [] };
  const { seq: S, seed, lr, data: dataKind, totalSteps, evalEvery } = settings;
  const startStep = savedRun?.step ?? 0;
  const steps = Math.max(0, totalSteps - startStep);
  const saveDir = values.save ?? resumeDir;
  if (settings.saveEvery !== null && !saveDir) {
    throw new Error("--save-every needs --save DIR (where the checkpoints go)");
  }
  if (saveDir && values.device === "meta") {
    throw new Error("--save / --resume: the meta device holds no numbers to save; use webgpu");
  }
  const log = (s: string) => values.json ? console.error(s) : console.log(s);
  if (saved && steps === 0) {
    log(`the run is complete at step ${startStep}; --steps K trains K more steps`);
    if (values.json) {
      console.log(JSON.stringify({
        preset: setup.cfg.name,
        seq: S,
        steps,
        step: startStep,
        totalSteps,
        policy: describePolicy(setup.policy),
        losses: [],
        valLosses: [],
        history,
      }));
    }
    return;
  }
  const saver = saveDir ? await CheckpointSaver.open(saveDir, settings.saveEvery, resumeDir) : null;
  if (saver?.removed.length) {
    log(`removed what an interrupted save left in ${saveDir}: ${saver.removed.join(", ")}`);
  }
  const dev = await createDevice(values.device ?? "webgpu", { floats: dtype });
  dev.setBudget(parseBudget(values.budget));
  const understood = budgetNote(values.budget);
  if (understood) log(understood);
  try {
    const { policy } = setup;
    const loaded = saved ? runFromState(dev, saved, policy) : null;
    const model = loaded?.model ?? Model.build(dev, setup.cfg, policy, { seed });
    const trainer = new Trainer(dev, model, { adamw: { lr } });
    const scalerResume = loaded?.restoreOptimizer(trainer);
    if (scalerResume === "restored") {
      log(`mixed precision: loss scale ${trainer.scaler!.scale} restored from the checkpoint`);
    } else if (scalerResume === "reset") {
      log(
        `mixed precision after an f32 run: the loss scaler starts afresh at ${
          trainer.scaler!.scale
        }; weights and AdamW moments resume exactly from the f32 checkpoint`,
      );
    } else if (scalerResume === "dropped") {
      log(`f32 after a mixed-precision run: the saved loss scale is not needed and is dropped`);
    }
    const data = await makeBatches(dataKind, setup.cfg, S, seed);
    if (loaded) data.restore(loaded.data);
    const evalBatches = data.validationBatches?.(settings.evalBatches);
    const valLosses: { step: number; loss: number }[] = [];
    /** Validation at every evalEvery-th step and the last, once per step across resumes. */
    const evaluate = async () => {
      const step = trainer.optimizer.step;
      if (!evalBatches || (step % evalEvery !== 0 && step !== totalSteps)) return;
      if (history.valLosses.some((v) => v.step === step)) return;
      const loss = await model.evaluate(evalBatches);
      valLosses.push({ step, loss });
      history.valLosses.push({ step, loss });
      log(
        `validation loss at step ${trainer.optimizer.step}: ${
          loss.toFixed(4)
        } (${evalBatches.length} windows of ${S})`,
      );
    };
    /** A checkpoint when one is due (`final`: at the end of the run). */
    const checkpoint = async (final: boolean) => {
      const step = trainer.optimizer.step;
      if (!saver || step === saver.savedStep || !(final || saver.due(step))) return;
      log(`saving step ${step} to ${saver.dir}…`);
      const path = await saver.save(trainer, data.state(), {
        ...trainExtra(settings, history),
        policy: JSON.parse(JSON.stringify(policy)) as JsonValue,
      });
      if (path) log(`saved step ${step}: ${path}`);
    };
    log(
      `${setup.cfg.name} on ${dev.kind}: S=${S}, ${
        startStep > 0 ? `from step ${startStep} ` : ""
      }to step ${totalSteps} (${steps} steps), ${describePolicy(policy)}, data ${data.description}`,
    );
    await evaluate();
    const run: RunStepsResult = await runSteps(dev, setup.cfg, policy, data, {
      trainer,
      steps,
      onWarning: (w) => log(`warning: ${w}`),
      onStep: async (r) => {
        log(
          `step ${String(r.step).padStart(4)}  loss ${r.loss?.toFixed(4) ?? "n/a (meta)"}  ` +
            `${formatBytes(r.peakBytes)} peak in ${r.peakPhase}` +
            (dev.kind === "meta" ? "" : `  ${(r.tokens / (r.ms / 1000)).toFixed(0)} tok/s`) +
            (r.warmup ? " (warm-up)" : "") +
            (r.skipped ? `  SKIPPED: inf/NaN gradients at loss scale ${r.lossScale}` : ""),
        );
        if (r.loss !== null) history.losses.push(r.loss);
        await evaluate();
        await checkpoint(false);
      },
    });
    await checkpoint(true);
    const nonzero = Object.fromEntries(Object.entries(run.breakdown).filter(([, b]) => b > 0));
    log(
      `peak ${formatBytes(run.peakBytes)} in ${run.peakPhase}: ` +
        Object.entries(nonzero).map(([t, b]) => `${t} ${formatBytes(b)}`).join(", "),
    );
    if (run.hostPeakBytes > 0) {
      log(
        `host ${formatBytes(run.hostPeakBytes)} at most (offloaded checkpoints, tag host; ` +
          `outside the device peak)`,
      );
    }
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
    if (trainer.scaler) {
      log(
        `mixed precision (f16): ${run.skippedSteps.length} step(s) skipped by loss scaling` +
          (run.skippedSteps.length ? ` (${run.skippedSteps.join(", ")})` : "") +
          `; loss scale now ${trainer.scaler.scale}`,
      );
    }
    if (run.chunks.mlp !== null || run.chunks.head !== null) {
      log(
        `mini-sequences run: mlp M=${run.chunks.mlp ?? "off"}, head M=${run.chunks.head ?? "off"}`,
      );
    }
    const overhead = deviceOverhead(dev);
    const overheadB = overhead ? overheadBytes(overhead, dev.pipelineCount) : null;
    log(
      `reserved (pool) ${formatBytes(run.reservedBytes)}, driver overhead ${
        overheadB === null ? "not modelled for this adapter" : formatBytes(overheadB)
      } (${dev.pipelineCount} pipelines)`,
    );
    if (values.json) {
      console.log(JSON.stringify({
        preset: setup.cfg.name,
        device: dev.kind,
        seq: S,
        steps,
        step: trainer.optimizer.step,
        totalSteps,
        policy: run.policy,
        dtype,
        skippedSteps: run.skippedSteps,
        lossScale: trainer.scaler?.scale ?? null,
        losses: run.losses,
        valLosses,
        history,
        tokensPerSec: run.tokensPerSec,
        timing: run.timing,
        peakBytes: run.peakBytes,
        reservedBytes: run.reservedBytes,
        hostPeakBytes: run.hostPeakBytes,
        pipelines: dev.pipelineCount,
        overheadBytes: overheadB,
        rssPeakBytes: residentMemory()?.peakRssBytes ?? null,
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

if (import.meta.main) await runTask("train", () => main(Deno.args));

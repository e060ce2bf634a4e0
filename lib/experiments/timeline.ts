/**
 * The memory timeline of one training step: every allocation and free with the step phase
 * (`forward`, `backward`, `optimizer`) and the live bytes after it, from the allocator's
 * timeline. A warm-up step runs first so the optimizer state is live, as in every later
 * step. `timelineRows` turns the events into metric rows for the `memoryTimeline` chart.
 */

import type { MemoryEvent } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../models/config.ts";
import { Model } from "../models/model.ts";
import { makeBatches } from "../train/data_source.ts";
import { Trainer } from "../train/trainer.ts";
import type { TrainPolicy } from "./train_run.ts";
import type { Json, MetricRow } from "../report/records.ts";

/** Result of {@link stepTimeline}. */
export interface StepTimeline {
  events: MemoryEvent[];
  /** Live bytes before the step's first event. */
  startBytes: number;
  peakBytes: number;
  /** Phase of the first event reaching the peak. */
  peakPhase: string;
}

/** Records the allocator timeline of the second training step of a fresh model. */
export async function stepTimeline(
  dev: Device,
  input: { cfg: ModelConfig; policy: TrainPolicy; seq: number; data: string; seed: number },
): Promise<StepTimeline> {
  const data = await makeBatches(input.data, input.cfg, input.seq, input.seed);
  const model = Model.build(dev, input.cfg, {
    seed: input.seed,
    checkpoint: input.policy.checkpoint,
    mst: input.policy.mst,
  });
  try {
    const trainer = new Trainer(dev, model, {
      optimizerInBackward: input.policy.optimizerInBackward ?? false,
    });
    await trainer.step(data.next());
    const startBytes = dev.allocator.liveBytes;
    dev.allocator.startTimeline();
    let events: MemoryEvent[];
    try {
      await trainer.step(data.next());
    } finally {
      events = dev.allocator.stopTimeline();
    }
    let peakBytes = startBytes;
    let peakPhase = "";
    for (const e of events) {
      if (e.liveBytes > peakBytes) {
        peakBytes = e.liveBytes;
        peakPhase = e.phase;
      }
    }
    return { events, startBytes, peakBytes, peakPhase };
  } finally {
    model.dispose();
  }
}

/**
 * The events as `metrics.jsonl` rows of kind "timeline" (index, event, tag, name, bytes,
 * phase, liveBytes) with `fields` (e.g. the policy) added: the `memoryTimeline` chart
 * (`lib/report/charts.ts`) draws from them.
 */
export function timelineRows(
  events: readonly MemoryEvent[],
  fields: Record<string, Json> = {},
): MetricRow[] {
  return events.map((e, i) => ({
    kind: "timeline",
    ...fields,
    index: i,
    event: e.kind,
    tag: e.tag,
    name: e.name,
    bytes: e.bytes,
    phase: e.phase,
    liveBytes: e.liveBytes,
  }));
}

/**
 * The memory timeline of one training step: every allocation and free with the step phase
 * (`forward`, `backward`, `optimizer`) and the live bytes after it, from the allocator's
 * timeline. A warm-up step runs first so the optimizer state is live, as in every later
 * step. `downsampleTimeline` keeps a chart readable without losing the peaks.
 */

import type { MemoryEvent } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../models/config.ts";
import { Model } from "../models/model.ts";
import { makeBatches } from "../train/data_source.ts";
import { Trainer } from "../train/trainer.ts";
import type { TrainPolicy } from "./train_run.ts";

/** One point of a timeline chart. */
export interface TimelinePoint {
  /** Event index within the step. */
  index: number;
  liveBytes: number;
  phase: string;
}

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
 * At most about `maxPoints` points: the events are cut into buckets and each bucket keeps
 * its lowest and highest live bytes (in event order), so peaks and troughs survive.
 */
export function downsampleTimeline(
  events: readonly MemoryEvent[],
  maxPoints: number,
): TimelinePoint[] {
  const pts = events.map((e, i) => ({
    index: i,
    liveBytes: e.liveBytes,
    phase: e.phase || "other",
  }));
  if (pts.length <= maxPoints) return pts;
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  const size = Math.ceil(pts.length / buckets);
  const out: TimelinePoint[] = [];
  for (let b = 0; b < pts.length; b += size) {
    const chunk = pts.slice(b, b + size);
    let lo = chunk[0], hi = chunk[0];
    for (const p of chunk) {
      if (p.liveBytes < lo.liveBytes) lo = p;
      if (p.liveBytes > hi.liveBytes) hi = p;
    }
    if (lo === hi) out.push(lo);
    else out.push(...(lo.index < hi.index ? [lo, hi] : [hi, lo]));
  }
  return out;
}

/**
 * The memory timeline of one training step: every allocation and free with the step phase
 * (`forward`, `backward`, `optimizer`) and the live bytes after it, from the allocator's
 * timeline. A warm-up step runs first so the optimizer state is live, as in every later
 * step. `downsampleTimeline` keeps a chart readable without losing the peaks.
 */

import type { MemoryEvent } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../models/config.ts";
import type { MemoryPolicy } from "../models/policy.ts";
import { makeBatches } from "../train/data_source.ts";
import { StepRunner } from "../train/run_steps.ts";

/** One point of a timeline chart. */
export interface TimelinePoint {
  /** Event index within the step. */
  index: number;
  /** Live bytes after the event. */
  liveBytes: number;
  /** Phase of the event ("other" outside forward, backward and optimizer). */
  phase: string;
}

/** Result of {@link stepTimeline}. */
export interface StepTimeline {
  /** The allocator's events of the step, in order. */
  events: MemoryEvent[];
  /** Live bytes before the step's first event. */
  startBytes: number;
  /** Most live bytes after any event of the step. */
  peakBytes: number;
  /** Phase of the first event reaching the peak. */
  peakPhase: string;
}

/** Records the allocator timeline of the second training step of a fresh model. */
export async function stepTimeline(
  dev: Device,
  input: { cfg: ModelConfig; policy: MemoryPolicy; seq: number; data: string; seed: number },
): Promise<StepTimeline> {
  const data = await makeBatches(input.data, input.cfg, input.seq, input.seed);
  const runner = new StepRunner(dev, input.cfg, input.policy, data, {
    init: { seed: input.seed },
  });
  try {
    await runner.step();
    const startBytes = dev.allocator.liveBytes;
    dev.allocator.startTimeline();
    let events: MemoryEvent[];
    try {
      await runner.step();
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
    runner.dispose();
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

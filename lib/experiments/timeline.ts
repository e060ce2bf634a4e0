/**
 * The memory timeline of one training step: every allocation and free with the step phase
 * (`forward`, `backward`, `optimizer`) and the live bytes after it, from the allocator's
 * timeline. A warm-up step runs first so the optimizer state is live, as in every later
 * step. `timelineRows` turns the events into metric rows for the `memoryTimeline` chart.
 */

import { checkSeq } from "../util/validate.ts";
import type { MemoryEvent } from "../device/allocator.ts";
import type { Device } from "../device/device.ts";
import type { ModelConfig } from "../config/model_config.ts";
import type { MemoryPolicy } from "../techniques/policy.ts";
import { makeBatches } from "../train/data_source.ts";
import { StepRunner } from "../train/run_steps.ts";
import type { Json, MetricRow } from "../report/json.ts";

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
  checkSeq("stepTimeline", input.seq);
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

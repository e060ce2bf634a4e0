/**
 * Plain-language reading of a {@link Plan}: where the peak happens, each phase's peak, the
 * largest tag, and whether fixed memory (weights + gradients + AdamW moments, which do not
 * depend on S) dominates — the case where MsT and recomputation cannot lower the peak.
 */

import { formatBytes } from "../device/dtype.ts";
import type { Plan } from "./planner.ts";

/** Fixed memory dominates when it is at least this share of the peak. */
export const FIXED_DOMINATES_SHARE = 0.5;

/** The phases reported, in step order. */
export const STEP_PHASES = ["forward", "backward", "optimizer"] as const;

/** True when weights + gradients + optimizer make up most of the peak. */
export function fixedDominates(plan: Plan): boolean {
  return plan.peakBytes > 0 && plan.fixedBytes / plan.peakBytes >= FIXED_DOMINATES_SHARE;
}

/** Lines explaining the peak of a plan, for the plan task's text output and reports. */
export function explainPlan(plan: Plan): string[] {
  const pct = (b: number) => `${(100 * b / Math.max(plan.peakBytes, 1)).toFixed(0)}%`;
  const phases = STEP_PHASES.filter((p) => plan.phasePeaks[p] !== undefined)
    .map((p) => `${p} ${formatBytes(plan.phasePeaks[p])}`);
  const lines = [
    `peak in ${plan.peakPhase}` + (phases.length ? ` (phase peaks: ${phases.join(", ")})` : "") +
    `; largest tag ${plan.largestTag} ${formatBytes(plan.breakdown[plan.largestTag] ?? 0)} (${
      pct(plan.breakdown[plan.largestTag] ?? 0)
    })`,
  ];
  if (fixedDominates(plan)) {
    const rest = plan.peakBytes - plan.fixedBytes;
    let line =
      `fixed memory dominates: weights + gradients + optimizer are ${
        formatBytes(plan.fixedBytes)
      } (${pct(plan.fixedBytes)} of the peak) and do not depend on S; MsT and recomputation ` +
      `shrink only the rest (${formatBytes(rest)})`;
    if (rest < 0.1 * plan.peakBytes) line += `: compare policies at a longer S, or with --max-seq`;
    const grads = plan.breakdown.grads ?? 0;
    if (grads >= 0.1 * plan.peakBytes) {
      line += `; --optimizer-in-backward frees most of the gradients (${formatBytes(grads)})`;
    }
    lines.push(line);
  }
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  return lines;
}

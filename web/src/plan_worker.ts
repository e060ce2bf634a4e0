/**
 * The planner's Web Worker: plans on the meta device off the page's thread, so the page stays
 * responsive through a max-S search (which the page cancels by terminating the worker).
 * Requests `{ id, op, argv, … }`; replies `{ id, ok: true, result }` or `{ id, ok: false, error }`
 * with the CLI's error message.
 */

import { registerKernelSources } from "../../lib/device/kernel_source.ts";
import { deepspeedExport, planJson, runPlanTask, stepTimeline } from "./plan_core.ts";

/** A request to the worker. */
export type PlanRequest =
  | { id: number; op: "plan"; argv: string[] }
  | { id: number; op: "text"; argv: string[] }
  | { id: number; op: "export"; argv: string[]; seq: number; chunks?: unknown }
  | { id: number; op: "timeline"; argv: string[]; label: string };

const ready = fetch(new URL("./kernels.json", import.meta.url)).then((r) => r.json()).then(
  (k: Record<string, string>) => registerKernelSources(k),
);

async function handle(req: PlanRequest): Promise<unknown> {
  await ready;
  const t0 = performance.now();
  switch (req.op) {
    case "plan": {
      const r = await planJson(req.argv);
      return { ...r, wallMs: performance.now() - t0 };
    }
    case "text":
      return await runPlanTask(req.argv);
    case "export":
      // deno-lint-ignore no-explicit-any
      return await deepspeedExport(req.argv, req.seq, req.chunks as any);
    case "timeline":
      return await stepTimeline(req.argv, req.label);
  }
}

const scope = self as unknown as {
  onmessage: ((ev: MessageEvent<PlanRequest>) => void) | null;
  postMessage(m: unknown): void;
};

scope.onmessage = async (ev: MessageEvent<PlanRequest>) => {
  const req = ev.data;
  try {
    const result = await handle(req);
    scope.postMessage({ id: req.id, ok: true, result });
  } catch (e) {
    scope.postMessage({ id: req.id, ok: false, error: (e as Error).message });
  }
};

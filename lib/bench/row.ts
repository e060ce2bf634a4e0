/** A benchmark table row and its printing (shared by every lib/bench/* row producer). */

/** One row of `deno task bench`. */
export interface BenchRow {
  /** What is measured, e.g. "matmul" or "linear fwd (tiny MLP up)". */
  name: string;
  /** Shape description, e.g. "(1024,64)·(224,64)ᵀ". */
  shape: string;
  /** Median milliseconds of ours. */
  ms: number;
  /** Our throughput in `unit`. */
  value: number;
  /** "GFLOP/s" or "tokens/s". */
  unit: string;
  /** The peer's (TensorFlow.js) throughput in `unit`, or null if not run. */
  peer: number | null;
  /** ours / peer, or null. */
  ratio: number | null;
  /** Caveats (e.g. how the peer was called, correctness check results). */
  note?: string;
  /** Training steps: peak live bytes of ours. */
  peakBytes?: number;
  /** Training steps: peak bytes of our device's pool (PyTorch's "reserved"). */
  reservedBytes?: number;
}

/** A fixed-width text table of rows. */
export function formatTable(rows: BenchRow[]): string {
  const head = ["name", "shape", "ms", "value", "unit", "peer (TF.js)", "ratio", "note"];
  const body = rows.map((r) => [
    r.name,
    r.shape,
    Number.isFinite(r.ms) ? r.ms.toFixed(1) : "-",
    Number.isFinite(r.value) ? r.value.toFixed(2) : "-",
    r.unit,
    r.peer === null ? "-" : r.peer.toFixed(2),
    r.ratio === null ? "-" : `${r.ratio.toFixed(1)}×`,
    r.note ?? "",
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...body.map(line)].join("\n");
}

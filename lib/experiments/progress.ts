/**
 * Progress bars for experiments (npm `cli-progress`), drawn on stderr only when stderr is a
 * terminal: in CI, pipes and tests they are silent, and the run's log lines say the same.
 */

import cliProgress from "cli-progress";
import process from "node:process";

/** A progress bar over a known number of items. */
export interface ProgressBar {
  /** Advances by one (or `n`), showing `item` (e.g. "S=1024 standard"). */
  tick(item?: string, n?: number): void;
  /** Removes the bar. */
  done(): void;
}

const SILENT: ProgressBar = { tick() {}, done() {} };

/** The bar being drawn, if any (one at a time). */
let active: { render(): void } | null = null;

/** Prints a line to stdout above the bar being drawn (the bar is cleared, then redrawn). */
export function printAbove(line: string): void {
  if (!active) {
    console.log(line);
    return;
  }
  Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[2K"));
  console.log(line);
  active.render();
}

/** Whether bars are drawn: stderr is a terminal. */
export function progressVisible(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** A bar labelled `label` over `total` items (silent when stderr is not a terminal). */
export function createProgress(
  label: string,
  total: number,
  visible = progressVisible(),
): ProgressBar {
  if (!visible || total <= 0) return SILENT;
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: "{label} [{bar}] {value}/{total} {item} ({duration_formatted})",
    hideCursor: true,
    clearOnComplete: true,
    barsize: 24,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0, { label, item: "" });
  const me = { render: () => bar.render() };
  active = me;
  return {
    tick(item = "", n = 1) {
      bar.increment(n, { item });
    },
    done() {
      bar.stop();
      if (active === me) active = null;
    },
  };
}

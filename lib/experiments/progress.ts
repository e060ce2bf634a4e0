/**
 * Progress bars for experiments, drawn on one line of stderr when stderr is a terminal.
 *
 * The bar line is the last line of the terminal. A log line is printed above it: the bar line
 * is cleared (`\r` + `ESC[2K`), the line printed with its newline, and the bar redrawn. Every
 * write is synchronous, the bar never moves the cursor up or saves and restores it, and it is
 * cut to the terminal width so it never wraps; when the last bar is done its line is cleared,
 * so what follows starts on a clean line. While a bar is drawn, `console.log` / `info` / `warn`
 * / `error` / `debug` go above it the same way.
 *
 * When stderr is not a terminal (CI, pipes, tests) or `TERM=dumb`, no bar is drawn and log
 * lines are printed plainly: no escape codes at all.
 *
 * A bar shows its label, the count, the item being worked on, the elapsed time and an ETA
 * (mean time per finished item × items left); outer bars of nested sweeps are shown as
 * `label i/n ›` before the innermost one.
 */

/** A progress bar over a known number of items. */
export interface ProgressBar {
  /** Shows `item` (e.g. "S=1024 standard") as the item being worked on. */
  item(item: string): void;
  /** Advances by one (or `n`); `item`, when given, is shown as the current item. */
  tick(item?: string, n?: number): void;
  /** Removes the bar (its line is cleared when it is the last one). */
  done(): void;
}

/** Where a {@link ProgressDisplay} writes. */
export interface ProgressStreams {
  /** Writes to the stream the bar is drawn on (stderr). */
  bar(text: string): void;
  /** Writes to the stream log lines go to (stdout). */
  log(text: string): void;
  /** The terminal's width in columns. */
  columns(): number;
}

/** Settings of a {@link ProgressDisplay}. */
export interface ProgressDisplayOptions {
  /** Draw bars (false: bars are silent and log lines plain). */
  draw: boolean;
  /** Clock in milliseconds (tests pass a fake one). Default `performance.now`. */
  now?: () => number;
  /** Redraw every this many ms while a bar is shown (elapsed time, ETA); 0 = never. */
  refreshMs?: number;
  /** Route `console.*` above the bar while one is drawn. Default false. */
  hookConsole?: boolean;
}

/** `12s`, `3m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

const NAME_KEYS = ["label", "name", "id", "policy", "key"];
const SEQ_KEYS = ["S", "seq", "seqLen", "sequence"];

/**
 * A short text for a sweep item: primitives as they are, arrays joined, and for objects
 * `S=<seq>` (from a `S`/`seq` field) and the first string of `label`, `name`, `id`, `policy`,
 * `key`, else up to three `key=value` pairs of primitive fields. Never `[object Object]`.
 */
export function describeItem(item: unknown): string {
  if (item === null || item === undefined) return "";
  if (typeof item !== "object") return String(item);
  if (Array.isArray(item)) return item.map(describeItem).filter((s) => s !== "").join(" ");
  if (item instanceof Date) return item.toISOString();
  const proto = Object.getPrototypeOf(item);
  if (proto !== Object.prototype && proto !== null && typeof item.toString === "function") {
    const s = item.toString();
    if (!s.startsWith("[object ")) return s;
  }
  const o = item as Record<string, unknown>;
  const parts: string[] = [];
  const seqKey = SEQ_KEYS.find((k) => typeof o[k] === "number");
  if (seqKey) parts.push(`S=${o[seqKey]}`);
  const nameKey = NAME_KEYS.find((k) => typeof o[k] === "string" && o[k] !== "");
  if (nameKey) parts.push(o[nameKey] as string);
  if (parts.length) return parts.join(" ");
  return Object.entries(o)
    .filter(([, v]) => v !== null && ["string", "number", "boolean"].includes(typeof v))
    .slice(0, 3)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

interface BarState {
  label: string;
  total: number;
  value: number;
  item: string;
  started: number;
}

const CLEAR_LINE = "\r\x1b[2K";
const CONSOLE_METHODS = ["log", "info", "warn", "error", "debug"] as const;
const BAR_WIDTH = 24;

/** Cuts `s` to `n` code points (the bar's characters are all one column wide). */
function cut(s: string, n: number): string {
  const cps = [...s];
  return cps.length <= n ? s : cps.slice(0, Math.max(0, n - 1)).join("") + "…";
}

/** Draws a stack of progress bars on one terminal line and prints log lines above it. */
export class ProgressDisplay {
  readonly draw: boolean;
  #streams: ProgressStreams;
  #now: () => number;
  #refreshMs: number;
  #hookConsole: boolean;
  #bars: BarState[] = [];
  #drawn = false;
  #timer: ReturnType<typeof setInterval> | null = null;
  #restoreConsole: (() => void) | null = null;

  constructor(streams: ProgressStreams, opts: ProgressDisplayOptions) {
    this.#streams = streams;
    this.draw = opts.draw;
    this.#now = opts.now ?? (() => performance.now());
    this.#refreshMs = opts.refreshMs ?? 0;
    this.#hookConsole = opts.hookConsole ?? false;
  }

  /** Number of bars being shown. */
  get active(): number {
    return this.#bars.length;
  }

  /** Prints `line` (and a newline) on the log stream, above the bar when one is drawn. */
  print(line: string): void {
    this.#above(() => this.#streams.log(line + "\n"));
  }

  /** A bar labelled `label` over `total` items; silent when not drawing or `total` ≤ 0. */
  bar(label: string, total: number): ProgressBar {
    if (!this.draw || total <= 0) return { item() {}, tick() {}, done() {} };
    const b: BarState = { label, total, value: 0, item: "", started: this.#now() };
    this.#bars.push(b);
    if (this.#bars.length === 1) this.#start();
    this.#render();
    let open = true;
    return {
      item: (item) => {
        if (!open) return;
        b.item = item;
        this.#render();
      },
      tick: (item, n = 1) => {
        if (!open) return;
        b.value = Math.min(b.total, b.value + n);
        if (item !== undefined) b.item = item;
        this.#render();
      },
      done: () => {
        if (!open) return;
        open = false;
        this.#bars.splice(this.#bars.indexOf(b), 1);
        if (this.#bars.length === 0) {
          this.#clear();
          this.#stop();
        } else this.#render();
      },
    };
  }

  /** The bar line as drawn now (without escape codes), cut to `columns − 1`. */
  line(): string {
    if (this.#bars.length === 0) return "";
    const now = this.#now();
    const outer = this.#bars.slice(0, -1).map((b) => `${b.label} ${b.value}/${b.total} › `);
    const b = this.#bars[this.#bars.length - 1];
    const filled = Math.round((b.value / b.total) * BAR_WIDTH);
    const elapsed = now - b.started;
    const eta = b.value > 0 && b.value < b.total
      ? ` eta ${formatDuration((elapsed / b.value) * (b.total - b.value))}`
      : "";
    const text = outer.join("") +
      `${b.label} [${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}] ${b.value}/${b.total}` +
      (b.item ? ` ${b.item}` : "") + ` · ${formatDuration(elapsed)}${eta}`;
    let cols = 80;
    try {
      const c = this.#streams.columns();
      if (Number.isFinite(c) && c > 0) cols = c;
    } catch {
      // no size known: keep 80
    }
    // one column short of the width, so the cursor never wraps to a new line
    return cut(text, Math.max(10, cols - 1));
  }

  #render(): void {
    if (!this.draw || this.#bars.length === 0) return;
    this.#streams.bar(CLEAR_LINE + this.line());
    this.#drawn = true;
  }

  #clear(): void {
    if (!this.#drawn) return;
    this.#streams.bar(CLEAR_LINE);
    this.#drawn = false;
  }

  /** Clears the bar, runs `write`, redraws the bar. */
  #above(write: () => void): void {
    this.#clear();
    try {
      write();
    } finally {
      this.#render();
    }
  }

  #start(): void {
    if (this.#refreshMs > 0) {
      const timer = setInterval(() => this.#render(), this.#refreshMs);
      // the redraw timer never keeps the process alive
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    if (this.#hookConsole) {
      const saved = CONSOLE_METHODS.map((m) => [m, console[m]] as const);
      for (const [m, f] of saved) {
        console[m] = (...args: unknown[]) => this.#above(() => f.apply(console, args));
      }
      this.#restoreConsole = () => {
        for (const [m, f] of saved) console[m] = f;
      };
    }
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#restoreConsole?.();
    this.#restoreConsole = null;
  }
}

/** Whether bars are drawn: stderr is a terminal and `TERM` is not `dumb`. */
function progressVisible(): boolean {
  try {
    return Deno.stderr.isTerminal() && Deno.env.get("TERM") !== "dumb";
  } catch {
    return false;
  }
}

const encoder = new TextEncoder();

/** Writes all of `text`; a closed reader (`| head`) does not stop the run that prints. */
function writeAll(f: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(f.writeSync(bytes));
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}

/** The process's streams: bars on stderr, log lines on stdout, the width of the terminal. */
const PROCESS_STREAMS: ProgressStreams = {
  bar: (text) => writeAll(Deno.stderr, text),
  log: (text) => writeAll(Deno.stdout, text),
  columns: () => Deno.consoleSize().columns,
};

let terminalDisplay: ProgressDisplay | null = null;
let plainDisplay: ProgressDisplay | null = null;

/** The process's display: drawing when `visible` (default: stderr is a terminal). */
function processDisplay(visible = progressVisible()): ProgressDisplay {
  if (visible) {
    terminalDisplay ??= new ProgressDisplay(PROCESS_STREAMS, {
      draw: true,
      refreshMs: 1000,
      hookConsole: true,
    });
    return terminalDisplay;
  }
  plainDisplay ??= new ProgressDisplay(PROCESS_STREAMS, { draw: false });
  return plainDisplay;
}

/** Prints a line to stdout, above the bar being drawn if any. */
export function printAbove(line: string): void {
  const d = terminalDisplay?.active ? terminalDisplay : processDisplay();
  d.print(line);
}

/** A bar labelled `label` over `total` items (silent when stderr is not a terminal). */
export function createProgress(
  label: string,
  total: number,
  visible = progressVisible(),
): ProgressBar {
  return processDisplay(visible).bar(label, total);
}

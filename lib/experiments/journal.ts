/**
 * The journal of an experiment run (`journal.jsonl` in the run directory): what
 * `deno task exp <name> --resume <run dir>` needs to continue a run that was killed.
 *
 * ```
 * {"journal":"mst-exp-journal-v1","experiment":…,"quick":…,"device":…,"startedAt":…,"argv":[…]}
 * {"point":"/0:0","sweep":"max S","item":"[object Object]","rows":1,"log":[…],"result":…}
 * {"point":"/0:1",…}
 * ```
 *
 * The first line says how the run was started; each further line is one finished sweep
 * point (`ctx.sweep`): its key (the path of sweep ordinals and item indices, so nested
 * sweeps have their own keys), the number of metric rows recorded when it finished, its log
 * lines and what `fn` returned. A point's rows reach `metrics.jsonl.partial` before its
 * journal line, and both files are flushed to disk first, so the journal never claims a row
 * the metrics file lacks.
 *
 * Recovery ({@link recoverJournal}) keeps the journal's complete lines (a torn last line from
 * a kill is dropped), truncates the metrics to the rows of the last finished point (rows of
 * a point that did not finish, and a torn last row, are dropped), and gives the context the
 * finished points: a resumed run skips them, returning their recorded results.
 *
 * Results travel as JSON; non-finite numbers (e.g. a NaN loss from a diverged run) are kept as
 * `{"$number":"NaN"}`. A result that is not plain data (a class instance, a typed array…)
 * is refused when its point finishes, since a resumed run could not rebuild it.
 */

import { writeTextAtomic } from "../util/atomic_write.ts";
import { RUN_FILES, runPath } from "../report/records.ts";
import { exists } from "../util/fs.ts";

/** File name of the journal in a run directory. */
export const JOURNAL_FILE = "journal.jsonl";

/** Format tag of the journal's first line. */
const JOURNAL_FORMAT = "mst-exp-journal-v1";

/** The journal's first line: how the run was started. */
export interface JournalHeader {
  journal: typeof JOURNAL_FORMAT;
  experiment: string;
  quick: boolean;
  device: "webgpu" | "meta";
  /** ISO time the run was first started. */
  startedAt: string;
  /** The command line it was started with. */
  argv: string[];
}

/** One finished sweep point. */
export interface JournalPoint {
  /** Key: the path of sweep ordinals and item indices, e.g. `/1:3` or `/0:2/0:1`. */
  point: string;
  /** The sweep's label and the item (as text), checked when the point is replayed. */
  sweep: string;
  item: string;
  /** Metric rows recorded (in the whole run) when the point finished. */
  rows: number;
  /** Log lines of the point. */
  log: string[];
  /** What the point's function returned, encoded ({@link encodeResult}); absent: undefined. */
  result?: unknown;
}

/** A run directory's journal after recovery. */
export interface RecoveredRun {
  header: JournalHeader;
  /** Finished points by key. */
  points: Map<string, JournalPoint>;
  /** Metric rows kept (those of finished points and before). */
  rows: number;
  /** What recovery discarded, for the log. */
  dropped: { journalLines: number; metricRows: number };
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A point's result as JSON data: plain objects, arrays, strings, booleans, null, finite
 * numbers as they are, non-finite numbers as `{"$number": "NaN" | "Infinity" | "-Infinity"}`.
 * @throws Error naming the path of a value that is not plain data.
 */
export function encodeResult(value: unknown, path = "result"): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    return Number.isFinite(value) ? value : { $number: String(value) };
  }
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((v, i) => encodeResult(v ?? null, `${path}[${i}]`));
  if (typeof value === "object" && isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) out[k] = encodeResult(v, `${path}.${k}`);
    }
    return out;
  }
  const what = typeof value === "object" ? value.constructor?.name ?? "object" : typeof value;
  throw new Error(
    `${path} is a ${what}, not plain data: a sweep's function must return numbers, strings, ` +
      `booleans, null, arrays and plain objects (use Array.from for typed arrays), so that a ` +
      `resumed run can reuse it`,
  );
}

/** Inverse of {@link encodeResult}. */
export function decodeResult(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decodeResult);
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === "$number" && typeof o.$number === "string") {
      return Number(o.$number);
    }
    return Object.fromEntries(keys.map((k) => [k, decodeResult(o[k])]));
  }
  return value;
}

/**
 * The complete lines of a JSON-lines file, and whether a torn last line (cut by a kill:
 * no final newline, or not JSON) was dropped.
 * @throws Error for a line before the last that is not JSON (the file is damaged).
 */
function completeLines(text: string, source: string): { lines: string[]; torn: boolean } {
  const parts = text.split("\n");
  const tail = parts.pop()!; // "" when the file ends with a newline, else a torn line
  let torn = tail.trim() !== "";
  const lines = parts.filter((l) => l.trim() !== "");
  for (let i = 0; i < lines.length; i++) {
    try {
      JSON.parse(lines[i]);
    } catch (e) {
      if (i === lines.length - 1 && !torn) {
        lines.pop();
        torn = true;
        break;
      }
      throw new Error(
        `${source}: line ${i + 1} is not JSON (${(e as Error).message}); the file is damaged`,
      );
    }
  }
  return { lines, torn };
}

/** Appends one line and flushes it (and, first, `flushFirst`) to disk. */
export function appendDurable(path: string, line: string, flushFirst?: string): void {
  if (flushFirst) {
    const f = Deno.openSync(flushFirst, { read: true });
    try {
      f.syncSync();
    } finally {
      f.close();
    }
  }
  const f = Deno.openSync(path, { append: true, create: true });
  try {
    const bytes = new TextEncoder().encode(line);
    for (let o = 0; o < bytes.length;) o += f.writeSync(bytes.subarray(o));
    f.syncSync();
  } finally {
    f.close();
  }
}

/** Writes the journal's first line (a new run). */
export async function startJournal(dir: string, header: Omit<JournalHeader, "journal">) {
  const h: JournalHeader = { journal: JOURNAL_FORMAT, ...header };
  await writeTextAtomic(runPath(dir, JOURNAL_FILE), JSON.stringify(h) + "\n");
}

/**
 * Reads the journal of `dir` and brings the run directory back to its last finished point
 * (module doc): rewrites the journal without a torn line and `metrics.jsonl.partial` with
 * the rows of the finished points (taking `metrics.jsonl` when the run was killed after
 * renaming it), and removes `error.txt` of a failed attempt.
 * @throws Error when `dir` is not a resumable run of `experiment`: no journal (an older
 *   run, or not a run directory), a finished run (`summary.json`), another experiment's run,
 *   or damaged files.
 */
export async function recoverJournal(dir: string, experiment: string): Promise<RecoveredRun> {
  const journalPath = runPath(dir, JOURNAL_FILE);
  if (await exists(runPath(dir, RUN_FILES.summary))) {
    throw new Error(`${dir} is a finished run (it has ${RUN_FILES.summary}); nothing to resume`);
  }
  let text: string;
  try {
    text = await Deno.readTextFile(journalPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error(
      `${dir} has no ${JOURNAL_FILE}: it is not a run directory of deno task exp, or was ` +
        `written by a version that could not resume; start a new run`,
    );
  }
  const j = completeLines(text, journalPath);
  if (j.lines.length === 0) {
    throw new Error(`${journalPath} has no header line; start a new run`);
  }
  const header = JSON.parse(j.lines[0]) as JournalHeader;
  if (header.journal !== JOURNAL_FORMAT) {
    throw new Error(
      `${journalPath}: not a ${JOURNAL_FORMAT} journal (${j.lines[0].slice(0, 100)})`,
    );
  }
  if (header.experiment !== experiment) {
    throw new Error(`${dir} is a run of ${header.experiment}, not ${experiment}`);
  }
  const points = new Map<string, JournalPoint>();
  let rows = 0;
  for (const line of j.lines.slice(1)) {
    const p = JSON.parse(line) as JournalPoint;
    points.set(p.point, p);
    rows = p.rows;
  }
  const partial = runPath(dir, RUN_FILES.metricsPartial);
  const finished = runPath(dir, RUN_FILES.metrics);
  // killed between renaming metrics.jsonl.partial and writing summary.json: take metrics.jsonl
  const source = await exists(partial) ? partial : await exists(finished) ? finished : null;
  const m = completeLines(source ? await Deno.readTextFile(source) : "", source ?? partial);
  if (m.lines.length < rows) {
    throw new Error(
      `${partial} has ${m.lines.length} complete rows but ${journalPath} records ${rows}: ` +
        `the run directory is damaged; start a new run`,
    );
  }
  const kept = m.lines.slice(0, rows);
  await writeTextAtomic(partial, kept.map((l) => l + "\n").join(""));
  if (source === finished) await Deno.remove(finished);
  if (j.torn) await writeTextAtomic(journalPath, j.lines.map((l) => l + "\n").join(""));
  if (await exists(runPath(dir, "error.txt"))) await Deno.remove(runPath(dir, "error.txt"));
  return {
    header,
    points,
    rows,
    dropped: {
      journalLines: j.torn ? 1 : 0,
      metricRows: m.lines.length - rows + (m.torn ? 1 : 0),
    },
  };
}

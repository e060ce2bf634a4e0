/**
 * A process's resident memory, from Linux's `/proc/<pid>/status`. On lavapipe the device's
 * buffers live in host memory, so this is how the accounting is checked against what the
 * process really holds.
 */

/** Resident set figures of a process, in bytes. */
export interface ResidentMemory {
  /** Resident set size now (VmRSS). */
  rssBytes: number;
  /** Highest resident set size so far (VmHWM, the "high water mark"). */
  peakRssBytes: number;
}

/**
 * The resident memory of `pid` (default: this process), or null where `/proc` does not exist
 * (not Linux) or the process is gone.
 */
export function residentMemory(pid: number | "self" = "self"): ResidentMemory | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  return parseProcStatus(text);
}

/** VmRSS and VmHWM of a `/proc/<pid>/status` text (kB in the file), or null when absent. */
export function parseProcStatus(text: string): ResidentMemory | null {
  const kb = (field: string) => {
    const m = text.match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m"));
    return m ? Number(m[1]) * 1024 : null;
  };
  const rss = kb("VmRSS");
  const hwm = kb("VmHWM");
  return rss === null || hwm === null ? null : { rssBytes: rss, peakRssBytes: hwm };
}

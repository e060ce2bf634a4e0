/**
 * Test helper: what a terminal shows after a program's output, rendered by a headless xterm.js
 * (npm `@xterm/headless`, the terminal emulator of VS Code) — carriage returns, line clears,
 * cursor moves and wrapping included — and the output run under a pseudo-terminal with
 * util-linux `script`.
 */

import xterm from "@xterm/headless";

/** Size and line handling of the emulated terminal. */
export interface ScreenOptions {
  cols: number;
  rows: number;
  /** Treat `\n` as `\r\n` (for output that did not pass through a tty's line discipline). */
  convertEol?: boolean;
}

/**
 * Every line of the terminal after `output` — scrollback then screen — with trailing spaces
 * and trailing empty lines removed.
 */
export async function renderScreen(
  output: string | Uint8Array,
  opts: ScreenOptions,
): Promise<string[]> {
  const term = new xterm.Terminal({
    cols: opts.cols,
    rows: opts.rows,
    scrollback: 10_000,
    convertEol: opts.convertEol ?? false,
    allowProposedApi: true,
  });
  try {
    await new Promise<void>((resolve) => term.write(output, resolve));
    const buf = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? "");
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines;
  } finally {
    term.dispose();
  }
}

/** Whether util-linux `script` (Debian's bsdutils) is on the PATH. */
export async function hasScript(): Promise<boolean> {
  try {
    const r = await new Deno.Command("script", { args: ["--version"], stdout: "piped" }).output();
    return r.success && new TextDecoder().decode(r.stdout).includes("util-linux");
  } catch {
    return false;
  }
}

/** Quotes a word for `sh -c`. */
function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs `cmd` under a pseudo-terminal of `cols`×`rows` (`script -qefc`), with no standard input;
 * returns its exit code and the raw bytes the terminal received (stdout and stderr together).
 */
export async function runInPty(
  cmd: string[],
  opts: { cols: number; rows: number; cwd?: string; env?: Record<string, string> },
): Promise<{ code: number; output: Uint8Array }> {
  const line = `stty cols ${opts.cols} rows ${opts.rows}; exec ${cmd.map(shellQuote).join(" ")}`;
  const r = await new Deno.Command("script", {
    args: ["-qefc", line, "/dev/null"],
    cwd: opts.cwd,
    env: { TERM: "xterm-256color", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, output: r.stdout };
}

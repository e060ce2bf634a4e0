/** The one entry wrapper of the tasks (`tasks/*.ts`): how a task's `main` ends the process. */

/** How {@link runTask} reports a failure. */
export interface TaskMainOptions {
  /** The exit code when `main` throws (default 1). */
  errorCode?: number;
  /** Printed on stderr after the error message (e.g. the task's usage). */
  usage?: string;
}

/**
 * Runs a task's `main`. A thrown error prints `<name>: <message>` (then `usage`, when given) on
 * stderr and exits with `errorCode`; a number returned is the exit code; otherwise the process
 * ends on its own when its work is done (a server started by `main` keeps it running).
 */
export async function runTask(
  name: string,
  main: () => Promise<number | void>,
  options: TaskMainOptions = {},
): Promise<void> {
  let code: number | void;
  try {
    code = await main();
  } catch (e) {
    const usage = options.usage === undefined ? "" : `\n${options.usage}`;
    console.error(`${name}: ${(e as Error).message}${usage}`);
    Deno.exit(options.errorCode ?? 1);
  }
  if (typeof code === "number") Deno.exit(code);
}

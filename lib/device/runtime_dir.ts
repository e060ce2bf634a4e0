/**
 * wgpu's Vulkan and GL back ends read `XDG_RUNTIME_DIR` when the WebGPU instance starts, and print
 * "XDG_RUNTIME_DIR is invalid or not set" on every start without it (common in containers and CI).
 * {@link ensureRuntimeDir} gives the process a private one before the first adapter request, so
 * no user has to export it.
 */

/**
 * Sets `XDG_RUNTIME_DIR` to a private per-user directory under the temp dir when it is missing or
 * not a directory. Idempotent; the directory is reused across runs (mode 0700, as the spec asks).
 */
export function ensureRuntimeDir(): void {
  let current: string | undefined;
  try {
    current = Deno.env.get("XDG_RUNTIME_DIR");
  } catch {
    return; // no --allow-env: leave the environment alone
  }
  if (current && isDirectory(current)) return;
  const tmp = Deno.env.get("TMPDIR") || "/tmp";
  const uid = Deno.uid() ?? "user";
  const dir = `${tmp}/mst-workbench-runtime-${uid}`;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(dir, 0o700);
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Read-only temp dir or no permission: wgpu only warns, so carry on without it.
  }
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

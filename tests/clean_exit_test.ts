/**
 * The test task exits cleanly: it keeps wgpu off its GL backend, so no WebGPU process loads
 * libEGL (libglvnd). libglvnd's exit-time teardown frees every thread's EGL state without its lock
 * while a thread that is exiting at the same moment frees its own (gfx-rs/wgpu#4285); `deno test`
 * runs each test module on a pool thread that its runtime lets exit in the background as the
 * process exits, so the two raced and glibc aborted ("corrupted size vs. prev_size in fastbins")
 * after every test had passed. See README.md (Troubleshooting).
 */

import assert from "node:assert/strict";

const BACKEND_VAR = "DENO_WEBGPU_BACKEND";

/** `NAME=value` assignments at the start of a deno task command line. */
function leadingAssignments(command: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const word of command.trim().split(/\s+/)) {
    const m = /^([A-Z_][A-Z0-9_]*)=(\S*)$/.exec(word);
    if (!m) break;
    env[m[1]] = m[2];
  }
  return env;
}

function testTaskEnv(): Record<string, string> {
  const config = JSON.parse(
    Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
  ) as { tasks?: Record<string, string> };
  const command = config.tasks?.test;
  assert.ok(command, "deno.json has no tasks.test");
  return leadingAssignments(command);
}

/** Child program: acquire a WebGPU device, then list the GL-stack libraries mapped in memory. */
const PROBE = `
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter?.requestDevice();
const maps = Deno.readTextFileSync("/proc/self/maps").split("\\n");
const libs = [...new Set(maps.map((l) => l.trim().split(/\\s+/)[5] ?? "")
  .filter((p) => /\\/lib(EGL|GLdispatch|GLX|GL)[._]/.test(p)))];
device?.destroy();
console.log(JSON.stringify({ adapter: adapter?.info.description ?? null, libs }));
`;

async function probe(
  env: Record<string, string>,
): Promise<{ adapter: string | null; libs: string[] }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", PROBE],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `the WebGPU probe failed:\n${stderr}`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

function inheritedEnvWithout(name: string): Record<string, string> {
  const env = Deno.env.toObject();
  delete env[name];
  return env;
}

Deno.test("the test task enables every wgpu backend but GL, Vulkan included", () => {
  const value = testTaskEnv()[BACKEND_VAR] ?? "";
  const backends = value.split(",").filter((b) => b !== "");
  const why = `deno.json's tasks.test must start with ${BACKEND_VAR}=vulkan,metal,dx12 (not ` +
    `"${value}"): with GL enabled wgpu loads libEGL and the suite can abort at exit ` +
    "(README.md, Troubleshooting)";
  assert.ok(backends.includes("vulkan"), why);
  assert.ok(!backends.some((b) => /^(gl|gles|opengl)$/i.test(b)), why);
});

Deno.test({
  name: "with the test task's environment a WebGPU process never loads libEGL",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const pinned = await probe({ ...inheritedEnvWithout(BACKEND_VAR), ...testTaskEnv() });
    assert.ok(pinned.adapter, "no WebGPU adapter under the test task's environment");
    assert.deepEqual(pinned.libs, [], `GL libraries loaded: ${pinned.libs.join(", ")}`);

    // Control: where libEGL is installed, the unpinned default does load it, so the probe above
    // can see the library it must not find.
    const unpinned = await probe(inheritedEnvWithout(BACKEND_VAR));
    const eglInstalled = ["/usr/lib/x86_64-linux-gnu/libEGL.so.1", "/usr/lib64/libEGL.so.1"]
      .some((p) => {
        try {
          return Deno.statSync(p).isFile;
        } catch {
          return false;
        }
      });
    if (eglInstalled) {
      assert.ok(
        unpinned.libs.some((p) => p.includes("libEGL")),
        `expected the unpinned default to load libEGL; it loaded: ${unpinned.libs.join(", ")}`,
      );
    }
  },
});

/**
 * Kernel sources' includes (lib/device/kernel_source.ts): `#include "name"` lines resolve to
 * `kernels/include/name.wgsl`, nested and once per kernel, from registered texts (the web
 * page's path) and from the files; a missing snippet, a malformed line and a cycle are errors
 * that name the kernel and the snippet. Every shipped kernel resolves, and every snippet is
 * used.
 */

import assert from "node:assert/strict";
import {
  isKernelInclude,
  KERNEL_INCLUDE_DIR,
  kernelSource,
  registerKernelSources,
} from "../lib/device/kernel_source.ts";

const KERNELS = new URL("../kernels/", import.meta.url);
const INCLUDES = new URL(`${KERNEL_INCLUDE_DIR}/`, KERNELS);

/** The `.wgsl` names (without the ending) in a folder. */
function wgslNames(dir: URL): string[] {
  return [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && e.name.endsWith(".wgsl"))
    .map((e) => e.name.slice(0, -5))
    .sort();
}

Deno.test("an include line is replaced by the snippet's text, nested snippets too", () => {
  registerKernelSources({
    ks_plain: "fn main() {}\n",
    ks_outer: 'const A = 1u;\n#include "ks_mid"\nfn main() {}\n',
    "include/ks_mid": '// mid\n  #include "ks_leaf"\nconst B = A + LEAF;\n',
    "include/ks_leaf": "const LEAF = 2u;\n",
  });
  assert.equal(kernelSource("ks_plain"), "fn main() {}\n");
  assert.equal(
    kernelSource("ks_outer"),
    "const A = 1u;\n// mid\nconst LEAF = 2u;\nconst B = A + LEAF;\nfn main() {}\n",
  );
  assert.ok(isKernelInclude("include/ks_mid"));
  assert.ok(!isKernelInclude("ks_outer"));
});

Deno.test("a snippet reached twice is pulled in once (two snippets may share a third)", () => {
  registerKernelSources({
    ks_diamond: '#include "ks_left"\n#include "ks_right"\nfn main() {}\n',
    "include/ks_left": '#include "ks_base"\nconst L = BASE;\n',
    "include/ks_right": '#include "ks_base"\nconst R = BASE;\n',
    "include/ks_base": "const BASE = 3u;\n",
  });
  const src = kernelSource("ks_diamond");
  assert.equal(src.split("const BASE = 3u;").length - 1, 1, src);
  assert.ok(src.indexOf("const BASE") < src.indexOf("const L"), src);
  assert.ok(src.includes("const R = BASE;"), src);
});

Deno.test("a missing snippet is an error naming the kernel, the snippet and its file", () => {
  registerKernelSources({
    ks_missing: '#include "ks_nowhere"\n',
    ks_missing_nested: '#include "ks_has_missing"\n',
    "include/ks_has_missing": '#include "ks_nowhere_either"\n',
  });
  assert.throws(
    () => kernelSource("ks_missing"),
    /snippet "ks_nowhere" \(kernels\/include\/ks_nowhere\.wgsl, included by kernel "ks_missing"\)/,
  );
  assert.throws(
    () => kernelSource("ks_missing_nested"),
    /snippet "ks_nowhere_either" .*included by snippet "ks_has_missing" \(included by kernel "ks_missing_nested"\)/,
  );
});

Deno.test("an include cycle is an error naming the kernel and the cycle", () => {
  registerKernelSources({
    ks_cyclic: 'fn f() {}\n#include "ks_a"\n',
    "include/ks_a": '#include "ks_b"\n',
    "include/ks_b": '#include "ks_a"\n',
    ks_self: '#include "ks_self"\n',
    "include/ks_self": '#include "ks_self"\n',
  });
  assert.throws(
    () => kernelSource("ks_cyclic"),
    /kernel "ks_cyclic": include cycle "ks_a" → "ks_b" → "ks_a"/,
  );
  // a snippet may share its kernel's name; including itself is still a cycle
  assert.throws(
    () => kernelSource("ks_self"),
    /kernel "ks_self": include cycle "ks_self" → "ks_self"/,
  );
});

Deno.test("a malformed include line is an error that shows the line", () => {
  registerKernelSources({
    ks_bad1: "#include ks_unquoted\n",
    ks_bad2: '#include "ks_a" trailing\n',
    ks_bad3: "#include\n",
  });
  for (const k of ["ks_bad1", "ks_bad2", "ks_bad3"]) {
    assert.throws(
      () => kernelSource(k),
      new RegExp(`kernel "${k}": malformed include line "#include.*"; write #include "name"`),
    );
  }
});

Deno.test("every kernel resolves from the files, and every snippet is included somewhere", () => {
  const snippets = wgslNames(INCLUDES);
  assert.ok(snippets.length > 0, "kernels/include/ holds the shared snippets");
  const used = new Set<string>();
  for (const k of wgslNames(KERNELS)) {
    const raw = Deno.readTextFileSync(new URL(`${k}.wgsl`, KERNELS));
    for (const m of raw.matchAll(/^\s*#include "(\w+)"/gm)) used.add(m[1]);
    const src = kernelSource(k);
    assert.ok(!/^\s*#include/m.test(src), `${k}: an include line is left`);
  }
  for (const s of snippets) {
    const raw = Deno.readTextFileSync(new URL(`${s}.wgsl`, INCLUDES));
    for (const m of raw.matchAll(/^\s*#include "(\w+)"/gm)) used.add(m[1]);
  }
  assert.deepEqual(snippets.filter((s) => !used.has(s)), [], "snippets no kernel includes");
  // the NF4 kernels share one decoder and one row blocking
  for (const k of ["nf4_matmul", "nf4_matmul_dx", "nf4_matmul_tex", "nf4_matmul_dx_tex"]) {
    for (const fn of ["fn nibble(", "fn putColumn("]) {
      assert.equal(kernelSource(k).split(fn).length - 1, 1, `${k}: ${fn}`);
    }
  }
});

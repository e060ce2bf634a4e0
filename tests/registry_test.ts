/**
 * The experiment registry: listing never imports a file that does not declare an experiment
 * (no side effects), skips it and a broken experiment with a reason, and still lists the rest.
 */

import assert from "node:assert/strict";
import {
  declaresExperiment,
  experimentNames,
  listExperiments,
  loadExperiment,
} from "../lib/experiments/registry.ts";

const DEFINE = new URL("../lib/experiments/define.ts", import.meta.url).href;

Deno.test("declaresExperiment reads the source, not the module", () => {
  assert.ok(declaresExperiment(`export default defineExperiment({ name: "a" });`));
  assert.ok(declaresExperiment(`export default defineExperiment<Cfg>({\n  name: "a",\n});`));
  assert.ok(
    declaresExperiment(`const exp = defineExperiment({ name: "a" });\nexport default exp;`),
  );
  assert.ok(!declaresExperiment(`console.log("hi");\nexport default 3;`));
  assert.ok(!declaresExperiment(`const exp = 1;\nexport default exp;`));
  assert.ok(!declaresExperiment(`// export default defineExperiment({})\nawait run();`));
  assert.ok(!declaresExperiment(`/*\nexport default defineExperiment({})\n*/\nawait run();`));
});

Deno.test("--list skips a plain script without running it, and a broken experiment", async () => {
  const dir = await Deno.makeTempDir({ prefix: "registry-" });
  const marker = `${dir}/script-ran`;
  try {
    await Deno.writeTextFile(
      `${dir}/good.ts`,
      `import { defineExperiment } from "${DEFINE}";\n` +
        `export default defineExperiment({ name: "good", description: "a good one", ` +
        `defaults: { n: 1 }, run() {} });\n`,
    );
    // a plain script with a side effect, then an error
    await Deno.writeTextFile(
      `${dir}/script.ts`,
      `Deno.writeTextFileSync(${JSON.stringify(marker)}, "ran");\n` +
        `throw new Error("a script, not an experiment");\n`,
    );
    await Deno.writeTextFile(
      `${dir}/broken.ts`,
      `import { defineExperiment } from "${DEFINE}";\n` +
        `export default defineExperiment({ name: "Broken Name", description: "", ` +
        `defaults: {}, run() {} });\n`,
    );
    await Deno.writeTextFile(`${dir}/helper_test.ts`, `throw new Error("never imported");\n`);
    const url = new URL(`file://${dir}/`);

    const list = await listExperiments(url);
    assert.deepEqual(list.experiments.map((e) => e.name), ["good"]);
    assert.deepEqual(list.skipped.map((s) => s.file), [
      "experiments/broken.ts",
      "experiments/script.ts",
    ]);
    assert.match(list.skipped[0].reason, /fails to load: experiment name "Broken Name"/);
    assert.match(list.skipped[1].reason, /does not `export default defineExperiment/);
    assert.deepEqual(await experimentNames(url), ["broken", "good"]);
    await assert.rejects(loadExperiment("script", url), /is not an experiment/);
    await assert.rejects(loadExperiment("nope", url), /known experiments: broken, good/);
    await assert.rejects(Deno.stat(marker), Deno.errors.NotFound, "the script was executed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the repository's experiments all declare themselves", async () => {
  const list = await listExperiments();
  assert.deepEqual(list.skipped, []);
  assert.ok(list.experiments.some((e) => e.name === "llama3-long"));
});

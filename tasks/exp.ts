/**
 * `deno task exp <name> [--quick] [--config f.yaml] [--set key=value]… [--device webgpu|meta]
 *   [--out DIR]`, `deno task exp <name> --resume <run dir>`, `deno task exp --list`,
 * `deno task exp <name> --help`
 *
 * Runs an experiment of `experiments/` and writes its run directory (default
 * `runs/<name>/<UTC stamp>/`): config.yaml, metrics.jsonl, summary.json, report.html,
 * report.md, charts/*.svg and charts/*.vl.json. The last line printed is the directory.
 */

import { parseTaskArgs } from "../lib/cli/args.ts";
import { configKeysHelp } from "../lib/experiments/config.ts";
import { listExperiments, loadExperiment } from "../lib/experiments/registry.ts";
import { runExperiment } from "../lib/experiments/run.ts";
import { RUN_FILES, runPath } from "../lib/report/records.ts";
import { runTask } from "../lib/cli/task_main.ts";

const USAGE =
  `usage: deno task exp <name> [--quick] [--config f.yaml] [--set key=value]... [--device webgpu|meta] [--out DIR]
       deno task exp <name> --resume <run dir>
       deno task exp --list
       deno task exp <name> --help      (the experiment's config keys)

  --quick          the small version (about a minute)
  --config f.yaml  a flat YAML mapping of config keys (applied after the defaults)
  --set key=value  one config key (after --config); arrays as 256,512,1024
  --device         webgpu (default) or meta (no compute: memory only, losses are null)
  --out DIR        the run directory (new or empty; default runs/<name>/<UTC stamp>/)
  --resume DIR     continue an interrupted run (killed, or failed) in DIR with its own config,
                   --quick and device: finished sweep points are reused, the rest is run`;

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseTaskArgs(argv, {
    quick: { type: "boolean" },
    config: { type: "string" },
    set: { type: "string", multiple: true },
    device: { type: "string" },
    out: { type: "string" },
    resume: { type: "string" },
    list: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, USAGE);
  if (values.list) {
    const { experiments, skipped } = await listExperiments();
    for (const s of skipped) console.error(`exp: warning: skipped ${s.file}: ${s.reason}`);
    const w = Math.max(0, ...experiments.map((e) => e.name.length));
    for (const e of experiments) console.log(`${e.name.padEnd(w)}  ${e.description}`);
    return;
  }
  if (positionals.length === 0) {
    if (values.help) {
      console.log(USAGE);
      return;
    }
    throw new Error(`missing experiment name (see --list)\n\n${USAGE}`);
  }
  if (positionals.length > 1) {
    throw new Error(`expected one experiment name, got: ${positionals.join(" ")}\n\n${USAGE}`);
  }
  const exp = await loadExperiment(positionals[0]);
  if (values.help) {
    console.log(`${exp.name}: ${exp.description}\n\nconfig keys:\n${configKeysHelp(exp.defaults)}`);
    if (exp.quick) console.log(`\n--quick sets: ${JSON.stringify(exp.quick)}`);
    return;
  }
  if (values.resume !== undefined) {
    // the other flags are passed only to be refused: a resumed run keeps its own
    const { dir, summary } = await runExperiment(exp, {
      resume: values.resume,
      quick: values.quick,
      device: values.device as "webgpu" | "meta" | undefined,
      yaml: values.config,
      set: values.set,
      out: values.out,
    });
    console.log(
      `\n${exp.name} finished (resumed), ${summary.seconds.toFixed(1)} s since it started`,
    );
    console.log(`report: ${runPath(dir, RUN_FILES.html)} and ${runPath(dir, RUN_FILES.markdown)}`);
    console.log(dir);
    return;
  }
  const device = values.device ?? "webgpu";
  if (device !== "webgpu" && device !== "meta") {
    throw new Error(`--device: unknown device "${device}": use webgpu or meta`);
  }
  let yaml: string | undefined;
  if (values.config !== undefined) {
    try {
      yaml = await Deno.readTextFile(values.config);
    } catch (e) {
      throw new Error(`--config ${values.config}: cannot read the file (${(e as Error).message})`);
    }
  }
  const { dir, summary } = await runExperiment(exp, {
    quick: values.quick ?? false,
    device,
    yaml,
    yamlSource: values.config,
    set: values.set,
    out: values.out,
    argv,
  });
  console.log(`\n${exp.name} finished in ${summary.seconds.toFixed(1)} s`);
  console.log(`report: ${runPath(dir, RUN_FILES.html)} and ${runPath(dir, RUN_FILES.markdown)}`);
  console.log(dir);
}

if (import.meta.main) await runTask("exp", () => main(Deno.args));

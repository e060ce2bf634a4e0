/**
 * The web page: the memory planner (the plan task run in a Web Worker on the meta device),
 * in-browser training of llama3-tiny on the visitor's WebGPU (standard and MsT side by side),
 * and the kernel reference cases. Every failure is shown on the page, never thrown to the
 * console.
 */

import { formatBytes } from "../../lib/device/dtype.ts";
import { isKernelInclude, registerKernelSources } from "../../lib/device/kernel_source.ts";
import { TAGS } from "../../lib/device/allocator.ts";
import { PRESET_NAMES } from "../../lib/config/presets.ts";
import { POLICIES } from "../../lib/techniques/policy.ts";
import { chartFromRows } from "../../lib/report/chart_defs.ts";
import { lossCurves, memoryTimeline, stackedPeak } from "../../lib/report/charts.ts";
import { renderSvg } from "../../lib/report/render_svg.ts";
import { WebGPUDevice } from "../../lib/device/webgpu.ts";
import type { StepRecord } from "../../lib/train/run_steps.ts";
import {
  cliCommand,
  CONFIG_FIELDS,
  DEFAULT_STATE,
  errorField,
  type PlanState,
  presetValue,
  stateArgv,
  stateFromQuery,
  stateToQuery,
} from "./state.ts";
import { trainTiny } from "./train_run.ts";
import { runKernelCases } from "./kernel_cases.ts";
import type { PlanRequest } from "./plan_worker.ts";

// ---------------------------------------------------------------- small helpers

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

/** Status line of a section. */
function status(id: string, text: string, kind: "" | "error" | "busy" = "") {
  const s = $(id);
  s.textContent = text;
  s.className = `status ${kind}`;
}

/** Runs an async UI action; a failure goes to `statusId`, never to the console. */
function guard(statusId: string, f: () => Promise<void>): () => void {
  return () => {
    f().catch((e) => status(statusId, (e as Error).message, "error"));
  };
}

// ---------------------------------------------------------------- the planner worker

type Reply = { id: number; ok: boolean; result?: unknown; error?: string };

/** A Web Worker running plan requests; `terminate` cancels whatever it is doing. */
class Planner {
  #worker: Worker | null = null;
  #next = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  #get(): Worker {
    if (!this.#worker) {
      const w = new Worker(new URL("./plan_worker.js", import.meta.url), { type: "module" });
      w.onmessage = (ev: MessageEvent<Reply>) => {
        const p = this.#pending.get(ev.data.id);
        if (!p) return;
        this.#pending.delete(ev.data.id);
        if (ev.data.ok) p.resolve(ev.data.result);
        else p.reject(new Error(ev.data.error));
      };
      w.onerror = (ev) => {
        ev.preventDefault();
        for (const p of this.#pending.values()) p.reject(new Error(`planner: ${ev.message}`));
        this.#pending.clear();
      };
      this.#worker = w;
    }
    return this.#worker;
  }

  /** Sends one request. */
  // deno-lint-ignore no-explicit-any
  request<T>(req: any): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#get().postMessage({ ...req, id } as PlanRequest);
    });
  }

  /** Stops the worker (its requests fail with "cancelled"); the next request starts a new one. */
  terminate() {
    this.#worker?.terminate();
    this.#worker = null;
    for (const p of this.#pending.values()) p.reject(new Error("cancelled"));
    this.#pending.clear();
  }
}

const mainPlanner = new Planner();
const comparePlanner = new Planner();
const searchPlanner = new Planner();

// ---------------------------------------------------------------- the planner form

let state: PlanState = stateFromQuery(location.search);

/** A labelled control with an error slot beside it. */
function field(id: string, label: string, control: HTMLElement, help = ""): HTMLElement {
  control.id = id;
  control.setAttribute("aria-describedby", `err-${id}`);
  const lab = el("label", { for: id }, label);
  const err = el("span", { class: "err", id: `err-${id}`, role: "alert" });
  const wrap = el("div", { class: "field" }, lab, control, err);
  if (help) wrap.title = help;
  return wrap;
}

function select(options: [string, string][], value: string): HTMLSelectElement {
  const s = el("select");
  for (const [v, text] of options) s.append(el("option", { value: v }, text));
  s.value = value;
  return s;
}

function input(value: string, attrs: Record<string, string> = {}): HTMLInputElement {
  const i = el("input", { type: "text", ...attrs });
  i.value = value;
  return i;
}

function checkbox(checked: boolean): HTMLInputElement {
  const c = el("input", { type: "checkbox" });
  c.checked = checked;
  return c;
}

function checkField(id: string, label: string, c: HTMLInputElement, help: string): HTMLElement {
  c.id = id;
  c.setAttribute("aria-describedby", `err-${id}`);
  const wrap = el(
    "div",
    { class: "field check" },
    c,
    el("label", { for: id }, label),
    el("span", { class: "err", id: `err-${id}`, role: "alert" }),
  );
  wrap.title = help;
  return wrap;
}

const mstOptions = (v: string): [string, string][] => {
  const opts: [string, string][] = [["off", "off"], ["auto", "auto M"]];
  for (const m of ["2", "4", "8", "16", "32"]) opts.push([m, `M = ${m}`]);
  if (!opts.some(([x]) => x === v)) opts.push([v, `M = ${v}`]);
  return opts;
};

/** Builds the form from `state`; every change replans. */
function buildForm() {
  const f = $("plan-form");
  f.replaceChildren();
  const onChange = () => {
    readForm();
    schedulePlan();
  };

  const model = el("fieldset", {}, el("legend", {}, "Model"));
  const presetSel = select(PRESET_NAMES.map((n) => [n, n]), state.preset);
  presetSel.addEventListener("change", () => {
    state.preset = presetSel.value;
    state.set = {};
    buildForm();
    schedulePlan();
  });
  model.append(field("preset", "preset", presetSel));
  const details = el("details", {}, el("summary", {}, "every ModelConfig field (--set)"));
  const grid = el("div", { class: "cfg-grid" });
  for (const k of CONFIG_FIELDS) {
    const c = input(state.set[k] ?? presetValue(state.preset, k), { "data-key": k });
    c.addEventListener("change", onChange);
    grid.append(field(`cfg-${k}`, k, c));
  }
  details.append(grid);
  if (Object.keys(state.set).length) details.open = true;
  model.append(details);

  const run = el("fieldset", {}, el("legend", {}, "Sequence and budget"));
  run.append(
    field("seq", "sequence length S", input(state.seq, { inputmode: "numeric" })),
    field(
      "dtype",
      "dtype",
      select([["bf16", "bf16"], ["f16", "f16"], ["f32", "f32"]], state.dtype),
    ),
    field("budget", "budget per GPU", input(state.budget, { placeholder: "none, e.g. 80GiB" })),
  );

  const tech = el("fieldset", {}, el("legend", {}, "Memory techniques"));
  tech.append(
    checkField(
      "checkpoint",
      "recomputation (--checkpoint)",
      checkbox(state.checkpoint),
      "activation recomputation of every block",
    ),
    field("mstMlp", "MsT MLP (--mst-mlp)", select(mstOptions(state.mstMlp), state.mstMlp)),
    field("mstHead", "MsT head (--mst-head)", select(mstOptions(state.mstHead), state.mstHead)),
    checkField(
      "keepAttention",
      "selective recomputation (--keep-attention)",
      checkbox(state.keepAttention),
      "keeps each block's attention output through recomputation",
    ),
    checkField(
      "offloadCheckpoints",
      "checkpoint offload (--offload-checkpoints)",
      checkbox(state.offloadCheckpoints),
      "block checkpoints in host memory",
    ),
    checkField(
      "optimizerInBackward",
      "optimizer in backward",
      checkbox(state.optimizerInBackward),
      "each parameter is updated as soon as its gradient is complete",
    ),
    field(
      "framework",
      "framework profile",
      select(
        [["ours", "ours (this workbench)"], ["hf", "hf (transformers + PyTorch)"]],
        state.framework,
      ),
    ),
  );

  const par = el("fieldset", {}, el("legend", {}, "GPUs"));
  par.append(
    field("gpus", "GPUs (--gpus)", input(state.gpus, { placeholder: "1", inputmode: "numeric" })),
    field(
      "zero",
      "ZeRO stage",
      select([["", "none"], ["0", "0"], ["1", "1"], ["2", "2"], ["3", "3"]], state.zero),
    ),
    field("sp", "SP degree (--sp)", input(state.sp, { placeholder: "1", inputmode: "numeric" })),
    checkField(
      "offloadOptimizer",
      "optimizer offload",
      checkbox(state.offloadOptimizer),
      "AdamW state on the host (needs ZeRO)",
    ),
    checkField(
      "offloadParams",
      "parameter offload",
      checkbox(state.offloadParams),
      "ZeRO-3 partitions on the host",
    ),
  );

  const buttons = el(
    "div",
    { class: "buttons" },
    el("button", { type: "button", id: "copy-cli" }, "copy CLI command"),
    el("button", { type: "button", id: "download-ds" }, "download DeepSpeed config"),
    el("button", { type: "button", id: "copy-link" }, "copy link"),
  );
  const formErr = el("div", { class: "err", id: "err-form", role: "alert" });
  f.append(model, run, tech, par, buttons, formErr);
  for (const c of f.querySelectorAll("input, select")) {
    if ((c as HTMLElement).dataset.key || c.id === "preset") continue;
    c.addEventListener("change", onChange);
    if (c instanceof HTMLInputElement && c.type === "text") c.addEventListener("input", onChange);
  }
  $("copy-cli").addEventListener("click", guard("plan-status", copyCli));
  $("download-ds").addEventListener("click", guard("plan-status", downloadDeepSpeed));
  $("copy-link").addEventListener("click", guard("plan-status", copyLink));
}

function readForm() {
  const v = (id: string) => ($(id) as HTMLInputElement).value;
  const c = (id: string) => ($(id) as HTMLInputElement).checked;
  const set: Record<string, string> = {};
  for (const k of CONFIG_FIELDS) {
    const val = v(`cfg-${k}`).trim();
    if (val !== presetValue(state.preset, k)) set[k] = val;
  }
  state = {
    preset: v("preset"),
    set,
    seq: v("seq").trim(),
    dtype: v("dtype") as PlanState["dtype"],
    budget: v("budget").trim(),
    checkpoint: c("checkpoint"),
    mstMlp: v("mstMlp"),
    mstHead: v("mstHead"),
    keepAttention: c("keepAttention"),
    offloadCheckpoints: c("offloadCheckpoints"),
    optimizerInBackward: c("optimizerInBackward"),
    framework: v("framework") as PlanState["framework"],
    gpus: v("gpus").trim(),
    zero: v("zero"),
    sp: v("sp").trim(),
    offloadOptimizer: c("offloadOptimizer"),
    offloadParams: c("offloadParams"),
  };
  history.replaceState(null, "", `?${stateToQuery(state)}${location.hash}`);
}

function clearErrors() {
  for (const e of document.querySelectorAll("#plan-form .err")) e.textContent = "";
  for (const e of document.querySelectorAll("#plan-form [aria-invalid]")) {
    e.removeAttribute("aria-invalid");
  }
}

/** Shows a CLI error beside the control it is about. */
function showError(message: string) {
  const id = errorField(message, state);
  const slot = $(`err-${id}`) ?? $("err-form");
  slot.textContent = message;
  $(id)?.setAttribute("aria-invalid", "true");
  if (id.startsWith("cfg-")) {
    (document.querySelector("#plan-form details") as HTMLDetailsElement).open = true;
  }
}

// ---------------------------------------------------------------- planning

// deno-lint-ignore no-explicit-any
type PlanJson = Record<string, any>;
let lastPlan: PlanJson | null = null;
let planTimer: ReturnType<typeof setTimeout> | undefined;
let generation = 0;

function schedulePlan() {
  clearTimeout(planTimer);
  planTimer = setTimeout(() => void replan(), 200);
}

/** Plans the form's state and redraws every output. */
async function replan() {
  const gen = ++generation;
  clearErrors();
  comparePlanner.terminate();
  status("plan-status", "planning on the meta device…", "busy");
  const argv = stateArgv(state);
  let plan: PlanJson;
  try {
    const r = await mainPlanner.request<{ line: string; plan: PlanJson; wallMs: number }>({
      op: "plan",
      argv,
    });
    if (gen !== generation) return;
    plan = r.plan;
    $("plan-json").textContent = r.line;
    $("plan-output").dataset.wallMs = String(r.wallMs);
  } catch (e) {
    if (gen !== generation) return;
    lastPlan = null;
    showError((e as Error).message);
    status("plan-status", "the plan has an input error (shown beside the field)", "error");
    return;
  }
  lastPlan = plan;
  showSummary(plan);
  status(
    "plan-status",
    `planned in ${(Number($("plan-output").dataset.wallMs) / 1000).toFixed(2)} s`,
  );
  await Promise.all([drawBreakdown(plan), drawTimeline(argv, gen), comparePolicies(gen)]).catch(
    (e) => {
      if ((e as Error).message !== "cancelled") {
        status("plan-status", (e as Error).message, "error");
      }
    },
  );
}

function showSummary(p: PlanJson) {
  const fits = p.budgetBytes === null
    ? "no budget given"
    : p.fits
    ? `fits in ${formatBytes(p.budgetBytes)}`
    : `does NOT fit in ${formatBytes(p.budgetBytes)}`;
  const rows: [string, string][] = [
    ["peak", `${formatBytes(p.peakBytes)} (${fits})`],
    ["peak phase", p.peakPhase],
    ["largest tag", `${p.largestTag} (${formatBytes(p.breakdown[p.largestTag] ?? 0)})`],
    ["policy", p.policy],
    [
      "fixed (weights + grads + AdamW)",
      `${formatBytes(p.fixedBytes)}${p.fixedDominates ? ", dominates" : ""}`,
    ],
    ["reserved + driver", `${formatBytes(p.reservedBytes)} + ${formatBytes(p.overheadBytes)}`],
  ];
  if (p.hostPeakBytes > 0) rows.push(["host (outside the budget)", formatBytes(p.hostPeakBytes)]);
  if (p.rank) rows.push(["one rank of", `${p.rank.description}, ${p.rank.tokensPerRank} tokens`]);
  if (p.hf) {
    rows.push([
      "PyTorch reserved peak",
      `${formatBytes(p.hf.reservedPeakBytes)} (allocated ${formatBytes(p.hf.allocatedPeakBytes)})`,
    ]);
  }
  for (const w of p.warnings ?? []) rows.push(["warning", w]);
  const dl = el("dl", { class: "summary" });
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, v));
  $("plan-summary").replaceChildren(dl);
}

async function putSvg(id: string, spec: unknown, name: string) {
  // deno-lint-ignore no-explicit-any
  const svg = await renderSvg(spec as any, name);
  const box = $(id);
  box.innerHTML = svg;
  const s = box.querySelector("svg");
  if (s) {
    s.setAttribute("role", "img");
    s.setAttribute("aria-label", name);
  }
}

async function drawBreakdown(p: PlanJson) {
  const rows = TAGS.filter((t) => (p.breakdown[t] ?? 0) > 0).map((t) => ({
    policy: p.policy,
    tag: t,
    bytes: p.breakdown[t],
  }));
  const spec = chartFromRows(
    stackedPeak({
      title: `${p.preset} at S=${p.seq}: memory at the peak by tag`,
      y: "policy",
      stack: "tag",
      x: "bytes",
      width: 520,
      height: 60,
      ...(p.budgetBytes !== null ? { budget: p.budgetBytes } : {}),
    }),
    rows,
  );
  await putSvg("chart-breakdown", spec, "memory at the peak by tag");
}

async function drawTimeline(argv: string[], gen: number) {
  const pts = await mainPlanner.request<unknown[]>({ op: "timeline", argv, label: "one step" });
  if (gen !== generation) return;
  const spec = chartFromRows(
    memoryTimeline({
      title: "live memory through one training step (one device)",
      width: 520,
      height: 120,
      maxPoints: 1500,
    }),
    // deno-lint-ignore no-explicit-any
    pts as any,
  );
  await putSvg("chart-timeline", spec, "memory timeline of one step");
}

const COMPARE: [string, keyof typeof POLICIES][] = [
  ["standard", "standard"],
  ["recomputation", "checkpoint"],
  ["MsT + recomputation", "mst"],
  ["MsT + optimizer in backward", "mstOib"],
  ["MsT + checkpoint offload", "mstOffload"],
  ["MsT + selective recomputation", "mstKeepAttention"],
  ["HF standard", "hfStandard"],
  ["HF recomputation", "hfCheckpoint"],
];

/** The same model, S, dtype, budget and GPUs under each named policy. */
async function comparePolicies(gen: number) {
  const body = $("compare-body");
  body.replaceChildren();
  const base: PlanState = {
    ...state,
    checkpoint: false,
    mstMlp: "off",
    mstHead: "off",
    keepAttention: false,
    offloadCheckpoints: false,
    optimizerInBackward: false,
    framework: "ours",
  };
  for (const [label, name] of COMPARE) {
    const tr = el("tr", {}, el("th", { scope: "row" }, label));
    const cells = [el("td"), el("td"), el("td"), el("td")];
    tr.append(...cells);
    body.append(tr);
    cells[0].textContent = "…";
    try {
      const r = await comparePlanner.request<{ plan: PlanJson }>({
        op: "plan",
        argv: [...stateArgv(base), "--policy", name],
      });
      if (gen !== generation) return;
      const p = r.plan;
      cells[0].textContent = formatBytes(p.peakBytes);
      cells[1].textContent = p.budgetBytes === null ? "—" : p.fits ? "yes" : "no";
      cells[2].textContent = p.peakPhase;
      cells[3].textContent = p.largestTag;
    } catch (e) {
      if ((e as Error).message === "cancelled" || gen !== generation) return;
      cells[0].textContent = (e as Error).message;
      cells[0].colSpan = 4;
      for (const c of cells.slice(1)) c.remove();
    }
  }
}

// ---------------------------------------------------------------- max S

let searchTick: ReturnType<typeof setInterval> | undefined;

async function findMaxSeq() {
  const btn = $("max-seq") as HTMLButtonElement;
  const cancel = $("max-seq-cancel") as HTMLButtonElement;
  const prog = $("max-seq-progress") as HTMLProgressElement;
  btn.disabled = true;
  cancel.disabled = false;
  prog.hidden = false;
  prog.removeAttribute("value");
  const t0 = performance.now();
  const tick = () => {
    $("max-seq-result").textContent = `searching… ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`;
  };
  searchTick = setInterval(tick, 100);
  tick();
  try {
    const r = await searchPlanner.request<{ plan: PlanJson; wallMs: number }>({
      op: "plan",
      argv: [...stateArgv(state), "--max-seq"],
    });
    const p = r.plan;
    const out = $("max-seq-result");
    out.textContent = `longest S within ${formatBytes(p.budgetBytes)}: S = ${p.maxSeq} ` +
      `(${p.probes.length} full training steps probed in ${(r.wallMs / 1000).toFixed(1)} s; ` +
      `peak ${formatBytes(p.peakBytes)})`;
    out.dataset.maxSeq = String(p.maxSeq);
    out.dataset.wallMs = String(r.wallMs);
  } catch (e) {
    const m = (e as Error).message;
    $("max-seq-result").textContent = m === "cancelled" ? "search cancelled" : m;
    if (m !== "cancelled") showError(m);
  } finally {
    clearInterval(searchTick);
    btn.disabled = false;
    cancel.disabled = true;
    prog.hidden = true;
  }
}

// ---------------------------------------------------------------- buttons

async function copyText(text: string, what: string) {
  $("copy-out").textContent = text;
  try {
    await navigator.clipboard.writeText(text);
    status("plan-status", `${what} copied`);
  } catch {
    status("plan-status", `${what} shown below the buttons (the clipboard is not available)`);
  }
}

async function copyCli() {
  readForm();
  await copyText(cliCommand(state), "CLI command");
}

async function copyLink() {
  readForm();
  await copyText(location.href, "link");
}

async function downloadDeepSpeed() {
  readForm();
  if (!lastPlan) throw new Error("no plan to export: fix the inputs first");
  if (!lastPlan.fits) {
    throw new Error(
      `not exported: the plan at S=${lastPlan.seq} does not fit; lower --seq or use --max-seq`,
    );
  }
  try {
    const r = await mainPlanner.request<{ config: string; note: string }>({
      op: "export",
      argv: stateArgv(state),
      seq: lastPlan.seq,
      chunks: lastPlan.chunks,
    });
    const a = el("a", {
      href: URL.createObjectURL(new Blob([r.config], { type: "application/json" })),
      download: "ds.json",
    });
    document.body.append(a);
    a.click();
    a.remove();
    $("copy-out").textContent = r.note;
    $("copy-out").dataset.config = r.config;
    status("plan-status", "DeepSpeed config ds.json downloaded; its launch note is shown below");
  } catch (e) {
    showError((e as Error).message);
    throw e;
  }
}

// ---------------------------------------------------------------- training

let kernelsReady: Promise<string[]> | null = null;
/**
 * Registers every kernel's WGSL and the snippets they include (shipped as kernels.json);
 * resolves to the kernels' names.
 */
function loadKernels(): Promise<string[]> {
  kernelsReady ??= fetch("kernels.json").then((r) => r.json()).then(
    (k: Record<string, string>) => {
      registerKernelSources(k);
      return Object.keys(k).filter((name) => !isKernelInclude(name));
    },
  );
  return kernelsReady;
}

let brown: Promise<{ tokens: number[]; source: string; text: string }> | null = null;
function loadBrown() {
  brown ??= fetch("brown.json").then((r) => r.json());
  return brown;
}

async function adapterNote(): Promise<{ f16: boolean; text: string }> {
  if (!("gpu" in navigator) || !navigator.gpu) {
    return {
      f16: false,
      text: "this browser has no WebGPU (navigator.gpu is undefined): training is off",
    };
  }
  const a = await navigator.gpu.requestAdapter();
  if (!a) return { f16: false, text: "no WebGPU adapter: training is off" };
  const name = [a.info.vendor, a.info.architecture, a.info.description].filter(Boolean).join(" ");
  const f16 = a.features.has("shader-f16");
  return {
    f16,
    text: `adapter: ${name || "unnamed"}; ` +
      (f16
        ? "shader-f16 available: f16 (mixed precision) can be chosen"
        : "no shader-f16 on this adapter, so training runs in f32 (f16 needs shader-f16)"),
  };
}

let stopTraining = false;

/**
 * Trains standard and MsT one after the other on one device (its compiled pipelines serve
 * both), each from the same initialization on the same windows, drawing as they go.
 */
async function train() {
  const steps = Number(($("train-steps") as HTMLInputElement).value);
  const seq = Number(($("train-seq") as HTMLInputElement).value);
  const floats = ($("train-dtype") as HTMLSelectElement).value as "f32" | "f16";
  const which = ($("train-runs") as HTMLSelectElement).value;
  for (const [v, what, max] of [[steps, "steps", 500], [seq, "S", 1024]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new Error(`${what}: expected an integer 1…${max}, got "${v}"`);
    }
  }
  stopTraining = false;
  ($("train-start") as HTMLButtonElement).disabled = true;
  ($("train-stop") as HTMLButtonElement).disabled = false;
  status("train-status", "loading kernels and the Brown slice…", "busy");
  await loadKernels();
  const data = await loadBrown();
  const rows: { step: number; loss: number; policy: string }[] = [];
  const policies = (which === "both" ? ["standard", "mst"] : [which]) as ("standard" | "mst")[];
  const list = $("train-losses");
  for (const p of ["standard", "mst"]) delete list.dataset[p];
  delete list.dataset.done;
  const dev = await WebGPUDevice.create({ floats });
  // the kernels the run dispatched and the device's kernel tiles, for the browser test
  const kernels = new Set<string>();
  const dispatch = dev.dispatch.bind(dev);
  dev.dispatch = (call) => {
    kernels.add(call.kernel);
    dispatch(call);
  };
  delete list.dataset.kernels;
  list.dataset.kernelTiles = dev.kernelTiles;
  let current = policies[0];
  const poll = setInterval(() => {
    $(`live-${current}`).textContent = formatBytes(dev.allocator.liveBytes);
  }, 100);
  try {
    for (const p of policies) {
      current = p;
      status(
        "train-status",
        `training llama3-tiny (${p === "mst" ? "MsT + recomputation" : "standard"}), S=${seq}, ` +
          `${steps} steps, ${floats}; the first step compiles the kernels…`,
        "busy",
      );
      await trainTiny(dev, data.tokens, { seq, steps, policy: p }, async (s: StepRecord) => {
        if (stopTraining) throw new Error("training stopped");
        rows.push({ step: s.step, loss: s.loss ?? NaN, policy: p });
        $(`tps-${p}`).textContent = `${Math.round(s.tokens / (s.ms / 1000))}`;
        $(`peak-${p}`).textContent = formatBytes(s.peakBytes);
        $(`loss-${p}`).textContent = (s.loss ?? NaN).toFixed(5);
        list.dataset[p] = JSON.stringify(rows.filter((r) => r.policy === p).map((r) => r.loss));
        await drawLoss(rows);
      });
    }
    list.dataset.kernels = JSON.stringify([...kernels].sort());
    list.dataset.done = "1";
    status("train-status", `done: ${steps} steps each (${policies.join(", ")}), ${floats}`);
  } finally {
    clearInterval(poll);
    dev.destroy();
    ($("train-start") as HTMLButtonElement).disabled = false;
    ($("train-stop") as HTMLButtonElement).disabled = true;
  }
}

let drawing = false;
async function drawLoss(rows: { step: number; loss: number; policy: string }[]) {
  if (drawing) return;
  drawing = true;
  try {
    const spec = chartFromRows(
      lossCurves({
        title: "training loss, llama3-tiny on Brown",
        width: 440,
        height: 200,
        order: ["standard", "mst"],
      }),
      rows,
    );
    await putSvg("chart-loss", spec, "training loss");
  } finally {
    drawing = false;
  }
}

// ---------------------------------------------------------------- start

async function start() {
  buildForm();
  $("max-seq").addEventListener("click", guard("plan-status", findMaxSeq));
  $("max-seq-cancel").addEventListener("click", () => searchPlanner.terminate());
  $("train-start").addEventListener("click", guard("train-status", train));
  $("train-stop").addEventListener("click", () => {
    stopTraining = true;
  });
  $("kernels-run").addEventListener(
    "click",
    guard("kernels-status", async () => {
      const names = await loadKernels();
      status("kernels-status", "running the kernel reference cases…", "busy");
      $("kernels-log").textContent = "";
      const set = ($("kernels-set") as HTMLSelectElement).value as "all" | "quick";
      const r = await runKernelCases(
        (line) => {
          $("kernels-log").textContent += line + "\n";
        },
        names,
        set,
      );
      $("kernels-log").dataset.result = JSON.stringify(r);
      status("kernels-status", r.summary, r.failed ? "error" : "");
    }),
  );
  const note = await adapterNote();
  $("adapter").textContent = note.text;
  const dt = $("train-dtype") as HTMLSelectElement;
  dt.replaceChildren(el("option", { value: "f32" }, "f32"));
  if (note.f16) dt.append(el("option", { value: "f16" }, "f16 (mixed precision)"));
  else dt.append(el("option", { value: "f16", disabled: "" }, "f16 (needs shader-f16)"));
  schedulePlan();
  document.body.dataset.ready = "1";
}

addEventListener("unhandledrejection", (ev) => {
  ev.preventDefault();
  status(
    "plan-status",
    String((ev as PromiseRejectionEvent).reason?.message ?? ev.reason),
    "error",
  );
});

start().catch((e) => status("plan-status", (e as Error).message, "error"));

export { DEFAULT_STATE };

/**
 * The web page on Chromium's WebGPU (Dawn + Tint on SwiftShader), a second WebGPU
 * implementation beside Deno's (wgpu + naga):
 * - the kernel reference cases run in the page: every kernel compiles under Tint and matches
 *   its f64 reference;
 * - cross-implementation exactness: llama3-tiny trained 5 steps on the shipped Brown slice in
 *   Chromium gives the losses of the same run under Deno's WebGPU within 1e-5;
 * - the page says when the adapter lacks `shader-f16`; no console error or warning.
 *
 * On SwiftShader the device picks small kernel tiles (`Device.kernelTiles`, chosen from the
 * adapter info): attention's 32-row blocks took SwiftShader's LLVM more than 2 minutes and the
 * GPU process past 10 GB to compile; with 4-row blocks the 25 pipelines of a llama3-tiny step
 * compile in ~22 s and the 5 steps take ~20 s. Without Chromium it is skipped, unless
 * MST_REQUIRE_BROWSER=1 (CI) makes that a failure.
 */

import assert from "node:assert/strict";
import { builtPage, haveBrowser, openPage } from "./fixtures/browser.ts";
import { isKernelInclude } from "../lib/device/kernel_source.ts";
import { testDevice } from "../lib/testing/gpu.ts";
import { trainTiny } from "../web/src/train_run.ts";

const STEPS = 5;
const SEQ = 16;

Deno.test({
  name: "web page on Chromium's WebGPU: kernel reference cases, training == Deno's within 1e-5",
  ignore: !haveBrowser(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const s = await openPage("?preset=llama3-tiny&seq=64&dtype=f32&budget=");
    try {
      const { page } = s;
      const adapter: string = await page.$eval("#adapter", (e) => e.textContent ?? "");
      const f16 = await page.evaluate(
        `navigator.gpu.requestAdapter().then((a) => a.features.has("shader-f16"))`,
      );
      if (!f16) assert.match(adapter, /no shader-f16 on this adapter, so training runs in f32/);

      // --- 5 training steps in Chromium …
      await page.$eval(
        "#train-steps",
        (e, v) => (e as unknown as { value: string }).value = v,
        String(STEPS),
      );
      await page.$eval(
        "#train-seq",
        (e, v) => (e as unknown as { value: string }).value = v,
        String(SEQ),
      );
      await page.select("#train-runs", "standard");
      const tT = performance.now();
      await page.click("#train-start");
      await page.waitForFunction(
        `document.getElementById("train-losses").dataset.done === "1" ||
         document.getElementById("train-status").classList.contains("error")`,
        { timeout: 900_000, polling: 500 },
      );
      const trainMs = performance.now() - tT;
      const status: string = await page.$eval("#train-status", (e) => e.textContent ?? "");
      const shown: string = await page.$eval("#train-status", (e) => e.textContent ?? "");
      assert.ok(
        !(await page.$eval("#train-status", (e) => e.classList.contains("error"))),
        `training in Chromium failed: ${shown}`,
      );
      const chromium: number[] = JSON.parse(
        await page.$eval(
          "#train-losses",
          (e) => (e as unknown as { dataset: { standard: string } }).dataset.standard,
        ),
      );
      assert.equal(chromium.length, STEPS, status);
      const trained = await page.$eval("#train-losses", (e) => ({
        kernels: JSON.parse((e as unknown as { dataset: { kernels: string } }).dataset.kernels),
        tiles: (e as unknown as { dataset: { kernelTiles: string } }).dataset.kernelTiles,
      })) as { kernels: string[]; tiles: string };
      // SwiftShader compiles the large tiles for minutes, out of memory (Device.kernelTiles)
      const info = String(
        await page.evaluate(
          `navigator.gpu.requestAdapter().then((a) => [a.info.vendor, a.info.architecture, a.info.description].join(" "))`,
        ),
      );
      assert.equal(trained.tiles, /swiftshader/i.test(info) ? "small" : "large", info);

      // --- … and under Deno's WebGPU, same tokens, same code
      const brown = JSON.parse(await Deno.readTextFile(`${await builtPage()}/brown.json`));
      const deno = (await trainTiny(await testDevice(), brown.tokens, {
        seq: SEQ,
        steps: STEPS,
        policy: "standard",
      })).losses as number[];
      console.log(
        "  step | Chromium (Dawn/Tint, SwiftShader) | Deno (wgpu/naga, lavapipe) | |diff|",
      );
      for (let i = 0; i < STEPS; i++) {
        console.log(
          `  ${i + 1}    | ${chromium[i].toFixed(7)} | ${deno[i].toFixed(7)} | ${
            Math.abs(chromium[i] - deno[i]).toExponential(2)
          }`,
        );
      }
      for (let i = 0; i < STEPS; i++) {
        assert.ok(
          Math.abs(chromium[i] - deno[i]) <= 1e-5,
          `step ${i + 1}: Chromium ${chromium[i]} vs Deno ${deno[i]}`,
        );
      }
      assert.ok(chromium[STEPS - 1] < chromium[0], `the loss falls: ${chromium}`);
      console.log(
        `  training ${STEPS} steps at S=${SEQ} in Chromium: ${
          (trainMs / 1000).toFixed(0)
        } s (compiling included)`,
      );

      // --- the kernel reference cases, in the page
      const tK = performance.now();
      await page.select("#kernels-set", "quick");
      await page.click("#kernels-run");
      await page.waitForFunction(
        `document.getElementById("kernels-log").dataset.result !== undefined ||
         document.getElementById("kernels-status").classList.contains("error")`,
        { timeout: 900_000, polling: 500 },
      );
      const kernelsMs = performance.now() - tK;
      const log: string = await page.$eval("#kernels-log", (e) => e.textContent ?? "");
      const summary: string = await page.$eval("#kernels-status", (e) => e.textContent ?? "");
      console.log(log.trimEnd().split("\n").map((l) => `  ${l}`).join("\n"));
      console.log(`  ${summary} (${(kernelsMs / 1000).toFixed(0)} s)`);
      const result = JSON.parse(
        await page.$eval(
          "#kernels-log",
          (e) => (e as unknown as { dataset: { result: string } }).dataset.result,
        ),
      );
      assert.equal(result.failed, 0, summary);
      const compiled = new Set([
        ...result.kernelsRun,
        ...Object.keys(result.compiledAlone),
        ...trained.kernels,
      ]);
      const names = Object.keys(
        JSON.parse(await Deno.readTextFile(`${await builtPage()}/kernels.json`)),
      ).filter((name) => !isKernelInclude(name)); // snippets compile inside their kernels
      assert.deepEqual(
        names.filter((k) => !compiled.has(k)),
        [],
        "every kernel compiled in Chromium",
      );

      const shots = Deno.env.get("MST_WEB_SCREENSHOTS");
      if (shots) {
        const section = await page.$("#training");
        await section!.screenshot({ path: `${shots}/web_training.png` });
        const kernels = await page.$("#kernels");
        await kernels!.screenshot({ path: `${shots}/web_kernels.png` });
      }

      const noisy = s.console.filter((c) =>
        c.type !== "log" && c.type !== "info" && c.type !== "debug"
      );
      assert.deepEqual(noisy, [], "no console error or warning");
    } finally {
      await s.close();
    }
  },
});

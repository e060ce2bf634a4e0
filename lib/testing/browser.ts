/**
 * Browser tests: the web page built once per test process (`tasks/web.ts`), served on
 * 127.0.0.1 and opened in Debian's headless Chromium through puppeteer-core (WebGPU on
 * SwiftShader). Every console message and page error is recorded.
 *
 * Without Chromium the tests are skipped, unless `MST_REQUIRE_BROWSER=1` (CI) makes that a
 * failure; `./setup.sh --browser` installs it.
 */

import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { buildWeb, serveDir } from "../../tasks/web.ts";

/** Where Debian's `chromium` package puts the browser (override with MST_CHROMIUM). */
export const CHROMIUM = Deno.env.get("MST_CHROMIUM") ?? "/usr/bin/chromium";

/** Flags for WebGPU in headless Chromium without a GPU (SwiftShader's Vulkan). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--window-size=1280,800",
];

/** True when Chromium is installed; throws when it is missing and MST_REQUIRE_BROWSER=1. */
export function haveBrowser(): boolean {
  let ok = false;
  try {
    ok = Deno.statSync(CHROMIUM).isFile;
  } catch {
    ok = false;
  }
  if (!ok && Deno.env.get("MST_REQUIRE_BROWSER") === "1") {
    throw new Error(
      `MST_REQUIRE_BROWSER=1 but Chromium is missing at ${CHROMIUM}: run ./setup.sh --browser`,
    );
  }
  return ok;
}

/** One console message or page error. */
export interface ConsoleEntry {
  type: string;
  text: string;
}

/** A served page in a browser. */
export interface BrowserSession {
  browser: Browser;
  page: Page;
  url: string;
  console: ConsoleEntry[];
  close(): Promise<void>;
}

let built: Promise<string> | null = null;

/** Builds the page once per process into a temp directory. */
export function builtPage(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "mst-web-" });
    return await buildWeb(`${dir}/dist`);
  })();
  return built;
}

/** How long any wait on the page may take (a wait is for a state, never a timed assertion). */
const PAGE_TIMEOUT_MS = 300_000;

/** Opens the built page at `query` (e.g. `?preset=…`) and waits for it to be ready. */
export async function openPage(query = ""): Promise<BrowserSession> {
  const dir = await builtPage();
  const { server, url } = serveDir(dir);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    defaultViewport: { width: 1280, height: 800 },
    // a wait for a slow page (SwiftShader compiling pipelines) is one protocol call
    protocolTimeout: 1_800_000,
  });
  const page = await browser.newPage();
  // every wait of the tests gets room: under CI's parallel suite the other browser test's
  // SwiftShader compiles share the 2 cores (puppeteer's default of 30 s timed out there)
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(PAGE_TIMEOUT_MS);
  const log: ConsoleEntry[] = [];
  page.on("console", (m) => log.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => log.push({ type: "pageerror", text: String(e) }));
  page.on("requestfailed", (r) => log.push({ type: "requestfailed", text: r.url() }));
  await page.goto(url + query, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']");
  return {
    browser,
    page,
    url,
    console: log,
    async close() {
      await browser.close();
      await server.shutdown();
    },
  };
}

/** Waits until the page has planned (status no longer busy); returns the plan JSON line. */
export async function waitForPlan(page: Page, timeout = 120_000): Promise<string> {
  await page.waitForFunction(
    `(() => { const s = document.getElementById("plan-status");
      return !s.classList.contains("busy") && s.textContent !== ""; })()`,
    { timeout, polling: 50 },
  );
  return await page.$eval("#plan-json", (e) => e.textContent ?? "");
}

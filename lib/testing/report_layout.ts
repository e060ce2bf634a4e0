/**
 * Checks a report's layout the way a reader sees it: `report.html` opened in headless Chromium
 * at 1280×800, and measured in the page (bounding boxes after layout, real fonts):
 *
 * - the page never scrolls sideways, and no element is wider than the main column, except
 *   inside a box that scrolls on its own (`div.scroll`, the wide tables);
 * - every chart (SVG) fits the column, and each legend lies inside its SVG;
 * - no visible text of a chart overlaps another (labels vega hides for overlap are not shown).
 *
 * Optionally writes a screenshot of the whole page. Needs Chromium (`/usr/bin/chromium`, or
 * `CHROMIUM`); {@link chromiumPath} says whether it is there.
 */

/** The viewport of the checks and screenshots (a laptop's browser window). */
export const VIEWPORT = { width: 1280, height: 800 };

/** What the page measured: the problems found and the page's height. */
export interface LayoutResult {
  problems: string[];
  /** Height of the whole page, px (for a full-page screenshot). */
  height: number;
  /** Charts (SVGs) measured. */
  charts: number;
}

/** The Chromium binary: `$CHROMIUM`, else /usr/bin/chromium; null when absent. */
export function chromiumPath(): string | null {
  const p = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
  try {
    return Deno.statSync(p).isFile ? p : null;
  } catch {
    return null;
  }
}

/** The script run in the page: measures and writes the result as JSON into `#__layout`. */
const MEASURE = String.raw`
(() => {
  const problems = [];
  const W = window.innerWidth;
  const body = document.body;
  const cs = getComputedStyle(body);
  const br = body.getBoundingClientRect();
  const left = br.left + parseFloat(cs.paddingLeft), right = br.right - parseFloat(cs.paddingRight);
  const name = (el) => {
    const fig = el.closest("figure");
    const where = fig ? "chart " + fig.id.replace(/^chart-/, "") : (el.closest("h1,h2,h3,p,table,pre,div")?.tagName ?? "") ;
    const text = (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 40);
    return el.tagName.toLowerCase() + (text ? ' "' + text + '"' : "") + " (" + where + ")";
  };
  const de = document.documentElement;
  if (de.scrollWidth > W) problems.push("the page scrolls sideways: " + de.scrollWidth + " px wide at " + W + " px");
  const visible = (el) => {
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === "none" || s.visibility === "hidden" || s.opacity === "0") return false;
      if (e.getAttribute && e.getAttribute("opacity") === "0") return false;
    }
    return true;
  };
  for (const el of body.querySelectorAll("*")) {
    if (el.id === "__layout") continue;
    const box = el.closest("div.scroll");
    if (box && box !== el) continue;
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.right > right + 1 || r.left < left - 1) {
      problems.push(name(el) + " is outside the main column: " + Math.round(r.left) + "–" + Math.round(r.right) + " px, column " + Math.round(left) + "–" + Math.round(right));
    }
  }
  const svgs = [...document.querySelectorAll("figure svg")];
  for (const svg of svgs) {
    const sr = svg.getBoundingClientRect();
    const inside = (r) => r.left >= sr.left - 1 && r.right <= sr.right + 1 && r.top >= sr.top - 1 && r.bottom <= sr.bottom + 1;
    for (const g of svg.querySelectorAll("g.role-legend")) {
      const r = g.getBoundingClientRect();
      if (r.width > 0 && !inside(r)) problems.push("a legend of " + name(svg) + " lies outside its SVG");
    }
    const texts = [...svg.querySelectorAll("text")].filter((t) => (t.textContent || "").trim() !== "" && visible(t));
    const boxes = texts.map((t) => [t, t.getBoundingClientRect()]);
    for (const [t, r] of boxes) {
      if (!inside(r)) problems.push(name(t) + " is cut off by its SVG");
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, ra] = boxes[i], [b, rb] = boxes[j];
        const ox = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
        const oy = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
        if (ox > 1.5 && oy > 1.5) problems.push(name(a) + " overlaps " + name(b));
      }
    }
  }
  const out = document.createElement("pre");
  out.id = "__layout";
  out.textContent = JSON.stringify({ problems, height: de.scrollHeight, charts: svgs.length });
  body.appendChild(out);
})();
`;

async function chromium(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = chromiumPath();
  if (!bin) throw new Error("no Chromium: install chromium (Debian) or set CHROMIUM to its path");
  const out = await new Deno.Command(bin, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--hide-scrollbars",
      "--no-first-run",
      "--mute-audio",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Opens `htmlPath` in headless Chromium at {@link VIEWPORT} and measures it (see the module doc);
 * with `screenshot`, also writes a PNG of the whole page there.
 */
export async function checkReportLayout(
  htmlPath: string,
  opts: { screenshot?: string } = {},
): Promise<LayoutResult> {
  const html = await Deno.readTextFile(htmlPath);
  const dir = await Deno.makeTempDir({ prefix: "layout-" });
  try {
    const page = `${dir}/page.html`;
    await Deno.writeTextFile(page, html.replace("</body>", `<script>${MEASURE}</script></body>`));
    const r = await chromium([
      `--window-size=${VIEWPORT.width},${VIEWPORT.height}`,
      "--virtual-time-budget=10000",
      "--dump-dom",
      `file://${page}`,
    ]);
    const m = /<pre id="__layout">([\s\S]*?)<\/pre>/.exec(r.stdout);
    if (!m) {
      throw new Error(
        `chromium measured nothing for ${htmlPath} (exit ${r.code}): ${r.stderr.slice(-1000)}`,
      );
    }
    const text = m[1].replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">")
      .replace(/&amp;/g, "&");
    const result = JSON.parse(text) as LayoutResult;
    if (opts.screenshot) {
      const height = Math.min(Math.max(result.height, VIEWPORT.height), 16000);
      const shot = await chromium([
        `--window-size=${VIEWPORT.width},${height}`,
        `--screenshot=${opts.screenshot}`,
        `file://${htmlPath}`,
      ]);
      if (shot.code !== 0) {
        throw new Error(`chromium could not screenshot ${htmlPath}: ${shot.stderr.slice(-1000)}`);
      }
    }
    return result;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Fails (an Error listing every problem) unless the report at `htmlPath` passes
 * {@link checkReportLayout}; without Chromium, says so and checks nothing unless
 * `MST_REQUIRE_BROWSER=1`, where the missing browser is the failure.
 */
export async function assertReportLayout(htmlPath: string, name = htmlPath): Promise<void> {
  if (!chromiumPath()) {
    if (Deno.env.get("MST_REQUIRE_BROWSER") === "1") {
      throw new Error(
        "MST_REQUIRE_BROWSER=1 but no Chromium: run ./setup.sh --browser (or set CHROMIUM to its path)",
      );
    }
    console.warn(`layout of ${name} not checked: no Chromium (install chromium)`);
    return;
  }
  const r = await checkReportLayout(htmlPath);
  if (r.problems.length > 0) {
    throw new Error(
      `the report of ${name} has layout problems at ${VIEWPORT.width} px:\n` +
        r.problems.map((p) => `- ${p}`).join("\n"),
    );
  }
}

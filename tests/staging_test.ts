/**
 * The ops' texture staging helper (lib/ops/staging.ts): operands are staged in order, handed to
 * the callback and freed in the same order when it returns or throws; a staging that fails
 * frees the textures made before it. Checked on the meta device's allocation timeline.
 */

import assert from "node:assert/strict";
import { MetaDevice } from "../lib/device/meta.ts";
import { withStagedTextures } from "../lib/ops/staging.ts";

/** The timeline's events as `alloc name` / `free name`. */
function events(dev: MetaDevice): string[] {
  return dev.allocator.stopTimeline().map((e) => `${e.kind} ${e.name}`);
}

Deno.test("withStagedTextures stages in order, returns the callback's value, frees in order", () => {
  const dev = new MetaDevice();
  const a = dev.tensor([8, 4], { tag: "activations", name: "a" });
  const b = dev.tensor([4, 4], { tag: "activations", name: "b" });
  const live = dev.allocator.liveBytes;
  dev.allocator.startTimeline();
  const r = withStagedTextures(dev, [[a, "a.tex"], [b, "b.tex"]], (textures) => {
    assert.deepEqual(textures.map((t) => t.name), ["a.tex", "b.tex"]);
    assert.ok(dev.allocator.liveBytes > live, "the textures are live inside the callback");
    return 7;
  });
  assert.equal(r, 7);
  assert.deepEqual(events(dev), ["alloc a.tex", "alloc b.tex", "free a.tex", "free b.tex"]);
  assert.equal(dev.allocator.liveBytes, live);
  // no operands: the callback runs with none, nothing is allocated
  dev.allocator.startTimeline();
  assert.equal(withStagedTextures(dev, [], (textures) => textures.length), 0);
  assert.deepEqual(events(dev), []);
});

Deno.test("withStagedTextures frees the textures when the callback or a staging throws", () => {
  const dev = new MetaDevice();
  const a = dev.tensor([8, 4], { tag: "activations", name: "a" });
  const odd = dev.tensor([3], { tag: "activations", name: "odd" }); // not a multiple of 4
  const live = dev.allocator.liveBytes;
  dev.allocator.startTimeline();
  assert.throws(
    () =>
      withStagedTextures(dev, [[a, "a.tex"]], () => {
        throw new Error("dispatch failed");
      }),
    /dispatch failed/,
  );
  assert.deepEqual(events(dev), ["alloc a.tex", "free a.tex"]);
  dev.allocator.startTimeline();
  let called = false;
  assert.throws(
    () => withStagedTextures(dev, [[a, "a.tex"], [odd, "odd.tex"]], () => called = true),
    /cannot stage "odd"/,
  );
  assert.ok(!called, "the callback does not run when a staging fails");
  assert.deepEqual(events(dev), ["alloc a.tex", "free a.tex"]);
  assert.equal(dev.allocator.liveBytes, live);
});

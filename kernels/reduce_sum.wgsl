// One stage of a deterministic two-stage sum: workgroup g sums (or sums the squares of, with
// square = 1) x[g·chunk .. min(n, (g+1)·chunk)) and writes out[offset + g]. Threads stride
// over the chunk, then a fixed tree reduction combines them, so results are bit-reproducible.
//
// Bindings:  @group(0) @binding(0) x   : array<f32>  (n)
//            @group(0) @binding(1) out : array<f32>  (≥ offset + G)   written at offset + g
//            @group(1) @binding(0) p   : Params { n, chunk, offset, square }
// Dispatch:  (G, 1, 1) with G = ceil(n / chunk) ≤ 65535 — one workgroup of 256 per chunk.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params { n: u32, chunk: u32, offset: u32, square: u32 }

@group(0) @binding(0) var<storage, read> x: array<SF>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let start = wg.x * p.chunk;
  let end = min(p.n, start + p.chunk);
  var acc = 0.0;
  for (var i = start + li; i < end; i += WG) {
    let v = f32(x[i]);
    acc += select(v, v * v, p.square != 0u);
  }
  red[li] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (li < k) {
      red[li] += red[li + k];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    out[p.offset + wg.x] = red[0];
  }
}

// Rotary position embedding, Hugging Face "rotate_half" convention. For position
// pos = offset + s, head h and i < half = hd/2, with angle a = pos · inv_freq[i]:
//   out[i]        = x[i] · cos a − x[i + half] · sin a
//   out[i + half] = x[i + half] · cos a + x[i] · sin a
// (sign = −1 rotates by −a: the backward / inverse).
//
// Precision: a is never formed in f32. The host tabulates, for every bit j of the position
// and every i, frac(2^j · inv_freq[i] / 2π) in f64 (p.tab[j * half + i]); the kernel adds the
// entries of the set bits of pos modulo 1 (each sum stays in [0, 1)), so the angle in turns
// is exact to ~1e-6 turns even at pos ~ 1e6, then maps it to [−π, π) for cos/sin.
//
// Bindings:  @group(0) @binding(0) x   : array<f32>  (S, H·hd)
//            @group(0) @binding(1) out : array<f32>  (S, H·hd)   written
//            @group(1) @binding(0) p   : Params { S, H, hd, half, offset, nbits, sign, nx,
//                                                 tab: {{N4}} × vec4 = (24 · half) f32 }
// Dispatch:  grid1d(ceil(S · half / 64)) — one invocation per (s, i), looping over heads;
//            the linear workgroup index is wg.y * nx + wg.x.

alias SF = f32; // storage float: f16 in the half variant (lib/device/kernel_source.ts)
struct Params {
  S: u32,
  H: u32,
  hd: u32,
  half: u32,
  offset: u32,
  nbits: u32,
  sign: f32,
  nx: u32,
  tab: array<vec4<f32>, {{N4}}>,
}

@group(0) @binding(0) var<storage, read> x: array<SF>;
@group(0) @binding(1) var<storage, read_write> out: array<SF>;
@group(1) @binding(0) var<uniform> p: Params;

const TWO_PI = 6.283185307179586;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let k = (wg.y * p.nx + wg.x) * 64u + li;
  if (k >= p.S * p.half) {
    return;
  }
  let s = k / p.half;
  let i = k - s * p.half;
  let pos = p.offset + s;
  var turns = 0.0;
  for (var j = 0u; j < p.nbits; j++) {
    if (((pos >> j) & 1u) != 0u) {
      let e = j * p.half + i;
      turns = fract(turns + p.tab[e / 4u][e % 4u]);
    }
  }
  if (turns >= 0.5) {
    turns -= 1.0;
  }
  let a = turns * TWO_PI;
  let c = cos(a);
  let sn = p.sign * sin(a);
  let row = s * p.H * p.hd;
  for (var h = 0u; h < p.H; h++) {
    let idx = row + h * p.hd + i;
    let x1 = f32(x[idx]);
    let x2 = f32(x[idx + p.half]);
    out[idx] = SF(x1 * c - x2 * sn);
    out[idx + p.half] = SF(x2 * c + x1 * sn);
  }
}

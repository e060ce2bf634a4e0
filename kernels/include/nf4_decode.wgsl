// NF4 decoding, shared by kernels/nf4_matmul*.wgsl (layout and formula in
// kernels/nf4_matmul.wgsl and lib/reference/nf4.ts). The including kernel declares
//   Wq : array<u32>  the bitsandbytes bytes of the 4-bit codes (element i in byte i / 2, high
//                    nibble for even i), little-endian in words;
//   Aq : array<u32>  the 8-bit absmax codes, little-endian in words;
//   Q  : array<f32>  the NF4 table [0, 16), dynamic map [16, 272), offset [272], per-256-block
//                    constants [273, …).

const DYN = 16u;
const OFFSET = 272u;
const NESTED = 273u;

// The 4-bit code of element i from `word`, the packed word holding it (Wq[i / 8]).
fn nibble(word: u32, i: u32) -> u32 {
  let byte = (word >> (8u * ((i >> 1u) & 3u))) & 0xffu;
  return select(byte >> 4u, byte & 15u, (i & 1u) == 1u);
}

// The 4-bit code of flattened element i.
fn code(i: u32) -> u32 {
  return nibble(Wq[i >> 3u], i);
}

// The NF4 value of element i from `word`, the packed word holding it.
fn value(word: u32, i: u32) -> f32 {
  return Q[nibble(word, i)];
}

// The dequantised absmax of block b.
fn scale(b: u32) -> f32 {
  let q = (Aq[b >> 2u] >> (8u * (b & 3u))) & 0xffu;
  return Q[DYN + q] * Q[NESTED + b / 256u] + Q[OFFSET];
}

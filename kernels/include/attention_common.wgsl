// Shared by the attention kernels (kernels/attention_*.wgsl, lib/ops/attention.ts): the
// parameter block, the two streamed operands and the template constants they all take. The
// including kernel declares its own @group(0) bindings (the operands bound as storage come
// after them) and its chunk length (C keys or Q query rows).

struct Params { S: u32, H: u32, KV: u32, window: u32, scale: f32, softcap: f32 }

// The template value OPERANDS (lib/ops/attention.ts) declares the two streamed operands here, as
// textures (@group(2)) or, when too large to stage (or `stage: false`), as storage buffers after
// the kernel's bindings, and defines loadA(i) / loadB(i) returning their vec4 number i.
{{OPERANDS}}

const HD4: u32 = {{HD4}}u;
const R: u32 = {{R}}u;
const WG: u32 = {{WG}}u;
// Compile-time feature flags (1 when the dispatch has a soft-cap / a sliding window): lavapipe
// executes both sides of an `if` under a mask, so a runtime test would not skip the tanh.
const CAPPED: bool = {{CAPPED}} != 0u;
const WINDOWED: bool = {{WINDOWED}} != 0u;

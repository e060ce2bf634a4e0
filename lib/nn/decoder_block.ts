/**
 * A pre-norm decoder block: h + attn(norm(h)), then + mlp(norm(·)); Gemma-2 adds a norm
 * after the attention and after the MLP ("pre+post norms").
 *
 * The MLP is any row-wise {@link SeqLayer}, so MsT can swap in a mini-sequence wrapper.
 */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { add } from "../ops/add.ts";
import { type Forward, type KeepingLayer, recomputeSaved, type SeqLayer, view } from "./layer.ts";
import type { RMSNorm, RMSNormSaved } from "./rmsnorm.ts";
import type { AttentionKept, AttentionSaved, SelfAttention } from "./self_attention.ts";

/** What a block keeps for backward. */
export interface BlockSaved {
  n1: RMSNormSaved;
  attn: AttentionSaved;
  postAttn?: RMSNormSaved;
  n2: RMSNormSaved;
  mlp: unknown;
  postMlp?: RMSNormSaved;
}

/** One decoder layer. */
export class DecoderBlock implements KeepingLayer<BlockSaved, AttentionKept> {
  readonly rowWise = false;
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly inputNorm: RMSNorm,
    readonly attention: SelfAttention,
    readonly preMlpNorm: RMSNorm,
    public mlp: SeqLayer,
    readonly postAttnNorm?: RMSNorm,
    readonly postMlpNorm?: RMSNorm,
  ) {}

  forward(h: Tensor): Forward<BlockSaved> {
    return this.#run(h, true) as Forward<BlockSaved>;
  }

  /**
   * The saved record only (recomputation): skips the block output (the last residual add)
   * and, without a post-MLP norm, the MLP output (`recompute` of the MLP or its wrapper).
   */
  recompute(h: Tensor): BlockSaved {
    return this.#run(h, false).saved;
  }

  /**
   * Forward, keeping the attention output and statistics (views) for selective
   * recomputation.
   */
  forwardKeeping(h: Tensor): Forward<BlockSaved> & { kept: AttentionKept } {
    const f = this.forward(h);
    const a = f.saved.attn;
    return { ...f, kept: { o: view(a.o), lse: view(a.lse) } };
  }

  /** The saved record, reusing the kept attention state (skips the attention kernel). */
  recomputeKeeping(h: Tensor, kept: AttentionKept): BlockSaved {
    return this.#run(h, false, kept).saved;
  }

  keptTensors(kept: AttentionKept): Tensor[] {
    return [kept.o, kept.lse];
  }

  #run(
    h: Tensor,
    withOutput: boolean,
    kept?: AttentionKept,
  ): { out: Tensor | null; saved: BlockSaved } {
    const dev = this.dev;
    const n1 = this.inputNorm.forward(h);
    const at = this.attention.forward(n1.out, kept);
    n1.out.dispose();
    let r = at.out;
    let postAttn: RMSNormSaved | undefined;
    if (this.postAttnNorm) {
      const pa = this.postAttnNorm.forward(at.out);
      at.out.dispose();
      r = pa.out;
      postAttn = pa.saved;
    }
    // h2 = h + r and its norm in one kernel (same allocations as add, then the norm)
    const n2 = this.preMlpNorm.forwardAdd(h, r, `${this.name}.h_mid`);
    const h2 = n2.sum; // (S, d)
    r.dispose();
    let out: Tensor | null = null;
    let mlpSaved: unknown;
    let postMlp: RMSNormSaved | undefined;
    if (!withOutput && !this.postMlpNorm) {
      mlpSaved = recomputeSaved(this.mlp, n2.out);
      n2.out.dispose();
    } else {
      const m = this.mlp.forward(n2.out);
      n2.out.dispose();
      mlpSaved = m.saved;
      let r2 = m.out;
      if (this.postMlpNorm) {
        const pf = this.postMlpNorm.forward(m.out);
        m.out.dispose();
        r2 = pf.out;
        postMlp = pf.saved;
      }
      if (withOutput) out = add(dev, h2, r2, { name: `${this.name}.out` }); // (S, d)
      r2.dispose();
    }
    h2.dispose();
    return {
      out,
      saved: { n1: n1.saved, attn: at.saved, postAttn, n2: n2.saved, mlp: mlpSaved, postMlp },
    };
  }

  backward(dy: Tensor, s: BlockSaved): Tensor {
    // out = h2 + post(mlp(norm2(h2)))
    const dm = this.postMlpNorm ? this.postMlpNorm.backward(dy, s.postMlp!) : dy;
    const db = this.mlp.backward(dm, s.mlp);
    if (dm !== dy) dm.dispose();
    const dh2 = this.preMlpNorm.backward(db, s.n2, dy); // + dy (residual), same kernel
    db.dispose();
    // h2 = h + post(attn(norm1(h)))
    const dat = this.postAttnNorm ? this.postAttnNorm.backward(dh2, s.postAttn!) : dh2;
    const da = this.attention.backward(dat, s.attn);
    if (dat !== dh2) dat.dispose();
    const dh = this.inputNorm.backward(da, s.n1, dh2); // + dh2 (residual), same kernel
    da.dispose();
    dh2.dispose();
    return dh;
  }
}

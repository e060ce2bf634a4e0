/** RMSNorm as a layer: y = x·rstd·w (Gemma-2: x·rstd·(1+w)), rstd = 1/√(mean(x²)+ε). */

import type { Device } from "../device/device.ts";
import type { Tensor } from "../device/tensor.ts";
import { addRmsnormForward, rmsnormBackward, rmsnormForward } from "../ops/rmsnorm.ts";
import { type Forward, type SeqLayer, view } from "./layer.ts";
import type { Parameter } from "./parameter.ts";

/** Kept for backward: the input and the per-row 1/rms. */
export interface RMSNormSaved {
  /** The input (S, d): a view of it. */
  x: Tensor;
  /** 1/rms per row, (S). */
  rstd: Tensor;
}

/** RMSNorm layer. */
export class RMSNorm implements SeqLayer<RMSNormSaved> {
  readonly rowWise = true;
  /**
   * An RMSNorm layer over `weight`.
   * @param dev The device.
   * @param name Name for reports.
   * @param weight Norm weight w, (d).
   * @param eps ε added to mean(x²).
   * @param unitOffset Scale by (1 + w) instead of w (Gemma-2).
   */
  constructor(
    readonly dev: Device,
    readonly name: string,
    readonly weight: Parameter, // (d)
    readonly eps: number,
    readonly unitOffset: boolean,
  ) {}

  forward(x: Tensor): Forward<RMSNormSaved> {
    const { y, rstd } = rmsnormForward(this.dev, x, this.weight.value, {
      eps: this.eps,
      unitOffset: this.unitOffset,
      name: this.name,
    });
    return { out: y, saved: { x: view(x), rstd } };
  }

  /**
   * The residual add before the norm, fused: returns sum = a + b (a new tensor named
   * `sumName`, tagged like `a`, as `add` would) and the norm of it, in one kernel.
   */
  forwardAdd(a: Tensor, b: Tensor, sumName: string): Forward<RMSNormSaved> & { sum: Tensor } {
    const { sum, y, rstd } = addRmsnormForward(this.dev, a, b, this.weight.value, {
      eps: this.eps,
      unitOffset: this.unitOffset,
      name: this.name,
      sumName,
    });
    return { sum, out: y, saved: { x: view(sum), rstd } };
  }

  /**
   * dx of the norm; with `residual` (the gradient of a residual branch around the norm),
   * returns dx + residual from the same kernel.
   */
  backward(dy: Tensor, s: RMSNormSaved, residual?: Tensor): Tensor {
    // a frozen weight (LoRA): the kernels still write dw, into a (d) scratch freed at once
    const frozen = this.weight.frozen;
    const dw = frozen
      ? this.dev.zeros(this.weight.shape, { tag: "workspace", name: `${this.name}.dw_unused` })
      : this.weight.gradFor(this.dev);
    const dx = rmsnormBackward(
      this.dev,
      dy,
      s.x,
      this.weight.value,
      s.rstd,
      dw,
      {
        unitOffset: this.unitOffset,
        name: `${this.name}.dx`,
        residual,
      },
    );
    if (frozen) dw.dispose();
    s.x.dispose();
    s.rstd.dispose();
    return dx;
  }
}

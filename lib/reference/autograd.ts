/**
 * A tiny reverse-mode autograd over f64 matrices, for references only.
 *
 * The reference model is written with these primitives so its gradients come from a
 * different method than the hand-written GPU backward passes: a test that compares the two
 * checks both. Everything is a row-major (rows, cols) matrix of f64. Slow by design; use it
 * on tiny shapes.
 */

/** A matrix node of the tape. */
export class Var {
  grad: Float64Array | null = null;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly data: Float64Array,
    readonly parents: Var[] = [],
    readonly backwardFn: ((g: Float64Array) => void) | null = null,
  ) {
    if (data.length !== rows * cols) {
      throw new Error(`Var: ${data.length} values for a ${rows}×${cols} matrix`);
    }
  }

  /** Accumulates into this node's gradient. */
  addGrad(g: Float64Array): void {
    if (!this.grad) this.grad = new Float64Array(this.data.length);
    for (let i = 0; i < g.length; i++) this.grad[i] += g[i];
  }
}

/** A leaf (parameter or input) holding `data`. */
export function leaf(rows: number, cols: number, data: ArrayLike<number>): Var {
  return new Var(rows, cols, Float64Array.from(data));
}

/** Runs the backward pass from a 1×1 output. */
export function backward(out: Var): void {
  if (out.data.length !== 1) throw new Error("backward: output must be a scalar");
  const order: Var[] = [];
  const seen = new Set<Var>();
  const visit = (v: Var) => {
    if (seen.has(v)) return;
    seen.add(v);
    for (const p of v.parents) visit(p);
    order.push(v);
  };
  visit(out);
  out.grad = Float64Array.of(1);
  for (let i = order.length - 1; i >= 0; i--) {
    const v = order[i];
    if (v.backwardFn && v.grad) v.backwardFn(v.grad);
  }
}

function same(a: Var, b: Var, op: string): void {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new Error(`${op}: ${a.rows}×${a.cols} vs ${b.rows}×${b.cols}`);
  }
}

/** A·B: (m,k)·(k,n). */
export function matmul(a: Var, b: Var): Var {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}×${a.cols} · ${b.rows}×${b.cols}`);
  const [m, k, n] = [a.rows, a.cols, b.cols];
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const x = a.data[i * k + p];
      if (x === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += x * b.data[p * n + j];
    }
  }
  const res: Var = new Var(m, n, out, [a, b], (g) => {
    const ga = new Float64Array(m * k);
    const gb = new Float64Array(k * n);
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < k; p++) {
        let s = 0;
        for (let j = 0; j < n; j++) {
          s += g[i * n + j] * b.data[p * n + j];
          gb[p * n + j] += a.data[i * k + p] * g[i * n + j];
        }
        ga[i * k + p] = s;
      }
    }
    a.addGrad(ga);
    b.addGrad(gb);
  });
  return res;
}

/** Aᵀ. */
export function transpose(a: Var): Var {
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j];
  }
  return new Var(a.cols, a.rows, out, [a], (g) => {
    const ga = new Float64Array(a.data.length);
    for (let i = 0; i < a.rows; i++) {
      for (let j = 0; j < a.cols; j++) ga[i * a.cols + j] = g[j * a.rows + i];
    }
    a.addGrad(ga);
  });
}

/** A + B. */
export function add(a: Var, b: Var): Var {
  same(a, b, "add");
  return new Var(a.rows, a.cols, a.data.map((x, i) => x + b.data[i]), [a, b], (g) => {
    a.addGrad(g);
    b.addGrad(g);
  });
}

/** A ∘ B. */
export function mul(a: Var, b: Var): Var {
  same(a, b, "mul");
  return new Var(a.rows, a.cols, a.data.map((x, i) => x * b.data[i]), [a, b], (g) => {
    a.addGrad(g.map((x, i) => x * b.data[i]));
    b.addGrad(g.map((x, i) => x * a.data[i]));
  });
}

/** c·A for a constant c. */
export function scale(a: Var, c: number): Var {
  return new Var(
    a.rows,
    a.cols,
    a.data.map((x) => x * c),
    [a],
    (g) => a.addGrad(g.map((x) => x * c)),
  );
}

/** A + c for a constant c. */
export function addConst(a: Var, c: number): Var {
  return new Var(a.rows, a.cols, a.data.map((x) => x + c), [a], (g) => a.addGrad(g));
}

/** A + M for a constant matrix M (e.g. an attention mask with -Infinity). */
export function addConstMatrix(a: Var, m: Float64Array): Var {
  return new Var(a.rows, a.cols, a.data.map((x, i) => x + m[i]), [a], (g) => a.addGrad(g));
}

/** Broadcast a (1,n) row vector over the rows of A: A ∘ r (op "mul") or A + r (op "add"). */
export function rowBroadcast(a: Var, r: Var, op: "mul" | "add"): Var {
  if (r.rows !== 1 || r.cols !== a.cols) throw new Error("rowBroadcast: shape mismatch");
  const n = a.cols;
  const out = a.data.map((x, i) => op === "mul" ? x * r.data[i % n] : x + r.data[i % n]);
  return new Var(a.rows, n, out, [a, r], (g) => {
    const gr = new Float64Array(n);
    if (op === "mul") {
      a.addGrad(g.map((x, i) => x * r.data[i % n]));
      g.forEach((x, i) => gr[i % n] += x * a.data[i]);
    } else {
      a.addGrad(g);
      g.forEach((x, i) => gr[i % n] += x);
    }
    r.addGrad(gr);
  });
}

/** Broadcast a (m,1) column vector over the columns of A: A ∘ c. */
export function colMul(a: Var, c: Var): Var {
  if (c.cols !== 1 || c.rows !== a.rows) throw new Error("colMul: shape mismatch");
  const n = a.cols;
  const out = a.data.map((x, i) => x * c.data[Math.floor(i / n)]);
  return new Var(a.rows, n, out, [a, c], (g) => {
    a.addGrad(g.map((x, i) => x * c.data[Math.floor(i / n)]));
    const gc = new Float64Array(a.rows);
    g.forEach((x, i) => gc[Math.floor(i / n)] += x * a.data[i]);
    c.addGrad(gc);
  });
}

/** Row sums: (m,n) → (m,1). */
export function rowSum(a: Var): Var {
  const out = new Float64Array(a.rows);
  a.data.forEach((x, i) => out[Math.floor(i / a.cols)] += x);
  return new Var(
    a.rows,
    1,
    out,
    [a],
    (g) => a.addGrad(a.data.map((_, i) => g[Math.floor(i / a.cols)])),
  );
}

/** Sum of all elements: (m,n) → (1,1). */
export function sumAll(a: Var): Var {
  const s = a.data.reduce((x, y) => x + y, 0);
  return new Var(
    1,
    1,
    Float64Array.of(s),
    [a],
    (g) => a.addGrad(new Float64Array(a.data.length).fill(g[0])),
  );
}

/** Elementwise f with derivative df (evaluated at the input). */
export function unary(a: Var, f: (x: number) => number, df: (x: number) => number): Var {
  return new Var(
    a.rows,
    a.cols,
    a.data.map(f),
    [a],
    (g) => a.addGrad(g.map((x, i) => x * df(a.data[i]))),
  );
}

/** tanh. */
export const tanh = (a: Var): Var => unary(a, Math.tanh, (x) => 1 - Math.tanh(x) ** 2);
/** exp. */
export const exp = (a: Var): Var => unary(a, Math.exp, Math.exp);
/** 1/√x. */
export const rsqrt = (a: Var): Var => unary(a, (x) => 1 / Math.sqrt(x), (x) => -0.5 * x ** -1.5);
/** SiLU x·σ(x). */
export const silu = (a: Var): Var =>
  unary(a, (x) => x / (1 + Math.exp(-x)), (x) => {
    const s = 1 / (1 + Math.exp(-x));
    return s + x * s * (1 - s);
  });

/** Columns [start, start+len). */
export function sliceCols(a: Var, start: number, len: number): Var {
  const out = new Float64Array(a.rows * len);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < len; j++) out[i * len + j] = a.data[i * a.cols + start + j];
  }
  return new Var(a.rows, len, out, [a], (g) => {
    const ga = new Float64Array(a.data.length);
    for (let i = 0; i < a.rows; i++) {
      for (let j = 0; j < len; j++) ga[i * a.cols + start + j] = g[i * len + j];
    }
    a.addGrad(ga);
  });
}

/** Horizontal concatenation. */
export function concatCols(parts: Var[]): Var {
  const rows = parts[0].rows;
  const cols = parts.reduce((s, p) => s + p.cols, 0);
  const out = new Float64Array(rows * cols);
  let off = 0;
  for (const p of parts) {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < p.cols; j++) out[i * cols + off + j] = p.data[i * p.cols + j];
    }
    off += p.cols;
  }
  return new Var(rows, cols, out, parts, (g) => {
    let o = 0;
    for (const p of parts) {
      const gp = new Float64Array(p.data.length);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < p.cols; j++) gp[i * p.cols + j] = g[i * cols + o + j];
      }
      p.addGrad(gp);
      o += p.cols;
    }
  });
}

/** Rows of a table: (V,d) gathered at ids → (S,d). */
export function gatherRows(table: Var, ids: ArrayLike<number>): Var {
  const d = table.cols;
  const out = new Float64Array(ids.length * d);
  for (let s = 0; s < ids.length; s++) {
    for (let j = 0; j < d; j++) out[s * d + j] = table.data[ids[s] * d + j];
  }
  return new Var(ids.length, d, out, [table], (g) => {
    const gt = new Float64Array(table.data.length);
    for (let s = 0; s < ids.length; s++) {
      for (let j = 0; j < d; j++) gt[ids[s] * d + j] += g[s * d + j];
    }
    table.addGrad(gt);
  });
}

/** Row-wise log-sum-exp: (m,n) → (m,1); -Infinity entries are masked out. */
export function logSumExpRows(a: Var): Var {
  const n = a.cols;
  const out = new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) {
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, a.data[i * n + j]);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(a.data[i * n + j] - mx);
    out[i] = mx + Math.log(s);
  }
  return new Var(a.rows, 1, out, [a], (g) => {
    a.addGrad(a.data.map((x, idx) => {
      const i = Math.floor(idx / n);
      return g[i] * Math.exp(x - out[i]);
    }));
  });
}

/** Row-wise softmax (via log-sum-exp), -Infinity entries get probability 0. */
export function softmaxRows(a: Var): Var {
  const lse = logSumExpRows(a);
  const n = a.cols;
  const shifted = new Var(a.rows, n, a.data.map((x, i) => x - lse.data[Math.floor(i / n)]), [
    a,
    lse,
  ], (g) => {
    a.addGrad(g);
    const gl = new Float64Array(a.rows);
    g.forEach((x, i) => gl[Math.floor(i / n)] -= x);
    lse.addGrad(gl);
  });
  return exp(shifted);
}

/** Picks a[i, targets[i]] into (m,1); rows whose target is negative give 0. */
export function pick(a: Var, targets: ArrayLike<number>): Var {
  const out = new Float64Array(a.rows);
  for (let i = 0; i < a.rows; i++) out[i] = targets[i] < 0 ? 0 : a.data[i * a.cols + targets[i]];
  return new Var(a.rows, 1, out, [a], (g) => {
    const ga = new Float64Array(a.data.length);
    for (let i = 0; i < a.rows; i++) if (targets[i] >= 0) ga[i * a.cols + targets[i]] = g[i];
    a.addGrad(ga);
  });
}

/**
 * A deterministic, resumable stream of training windows over a token stream.
 *
 * The token stream of N tokens is cut into W = ⌊(N−1)/S⌋ non-overlapping windows of S+1
 * tokens: window k covers tokens [k·S, k·S+S] (consecutive windows share one boundary
 * token, so every token except the first is a target exactly once per epoch). A window
 * gives `inputs` = its first S tokens and `targets` = its last S tokens.
 *
 * Order: each epoch visits every window once, in a permutation drawn by a Fisher-Yates
 * shuffle from a splitmix32 generator seeded with (seed, epoch); with `shuffle: false`, in
 * order 0..W−1. The whole position is therefore `{epoch, index}` (plus the settings): a
 * stream restored from `state()` yields exactly the windows the original would have.
 */

/** Settings of a {@link WindowStream}. */
export interface WindowStreamOptions {
  /** S: tokens per input window. */
  seqLen: number;
  /** Seed of the per-epoch shuffles (default 0). */
  seed?: number;
  /** Shuffle window order each epoch (default true). */
  shuffle?: boolean;
}

/** Everything needed to resume a stream (JSON-serializable). */
export interface WindowStreamState {
  seqLen: number;
  seed: number;
  shuffle: boolean;
  /** Completed epochs. */
  epoch: number;
  /** Windows already taken in the current epoch. */
  index: number;
  /** N, and an FNV-1a hash of the tokens, to refuse resuming on a different stream. */
  tokenCount: number;
  tokenHash: number;
}

/** One training window. */
export interface Window {
  /** (S) input ids. */
  inputs: Int32Array;
  /** (S) target ids: the inputs shifted by one. */
  targets: Int32Array;
  /** Epoch and position within it of this window. */
  epoch: number;
  index: number;
  /** Offset of inputs[0] in the token stream. */
  offset: number;
}

/** 32-bit FNV-1a over the token ids. */
function hashTokens(tokens: ArrayLike<number>): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) {
    h ^= tokens[i] & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= tokens[i] >>> 16;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** splitmix32 step: returns [next state, output in [0, 2^32)]. */
function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [s, (z ^ (z >>> 16)) >>> 0];
}

/** Window order of one epoch. */
function epochOrder(windows: number, seed: number, epoch: number, shuffle: boolean): Uint32Array {
  const order = new Uint32Array(windows);
  for (let i = 0; i < windows; i++) order[i] = i;
  if (!shuffle) return order;
  let s = splitmix32(seed ^ Math.imul(epoch + 1, 0x27d4eb2d))[1];
  for (let i = windows - 1; i > 0; i--) {
    let r: number;
    [s, r] = splitmix32(s);
    const j = Math.floor((r / 2 ** 32) * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** Deterministic, resumable windows of S+1 tokens (module doc). */
export class WindowStream {
  readonly #tokens: Int32Array;
  readonly #seqLen: number;
  readonly #seed: number;
  readonly #shuffle: boolean;
  readonly #hash: number;
  #epoch = 0;
  #index = 0;
  #order: Uint32Array;

  /**
   * @param tokens the split's token stream (copied).
   * @throws RangeError if S is not a positive integer or the stream has fewer than S+1 tokens.
   */
  constructor(
    tokens: ArrayLike<number>,
    { seqLen, seed = 0, shuffle = true }: WindowStreamOptions,
  ) {
    if (!Number.isInteger(seqLen) || seqLen <= 0) {
      throw new RangeError(`window stream: seqLen must be a positive integer, got ${seqLen}`);
    }
    if (tokens.length < seqLen + 1) {
      throw new RangeError(
        `window stream: ${tokens.length} tokens cannot fill one window of seqLen+1 = ${
          seqLen + 1
        }; use a shorter sequence or a larger split`,
      );
    }
    this.#tokens = Int32Array.from(tokens);
    this.#seqLen = seqLen;
    this.#seed = seed >>> 0;
    this.#shuffle = shuffle;
    this.#hash = hashTokens(this.#tokens);
    this.#order = epochOrder(this.windowsPerEpoch, this.#seed, 0, shuffle);
  }

  /** W = ⌊(N−1)/S⌋. */
  get windowsPerEpoch(): number {
    return Math.floor((this.#tokens.length - 1) / this.#seqLen);
  }

  /** The next window (starting a new epoch after the last one). */
  next(): Window {
    if (this.#index >= this.#order.length) {
      this.#epoch++;
      this.#index = 0;
      this.#order = epochOrder(this.windowsPerEpoch, this.#seed, this.#epoch, this.#shuffle);
    }
    const index = this.#index++;
    const offset = this.#order[index] * this.#seqLen;
    const S = this.#seqLen;
    return {
      inputs: this.#tokens.slice(offset, offset + S),
      targets: this.#tokens.slice(offset + 1, offset + S + 1),
      epoch: this.#epoch,
      index,
      offset,
    };
  }

  /** The current position and settings. */
  state(): WindowStreamState {
    return {
      seqLen: this.#seqLen,
      seed: this.#seed,
      shuffle: this.#shuffle,
      epoch: this.#epoch,
      index: this.#index,
      tokenCount: this.#tokens.length,
      tokenHash: this.#hash,
    };
  }

  /**
   * Continues from a saved position.
   * @throws Error if the state was saved for other settings or another token stream.
   */
  restore(state: WindowStreamState): void {
    const mine = this.state();
    const keys = ["seqLen", "seed", "shuffle", "tokenCount", "tokenHash"] as const;
    const diff = keys.filter((k) => state[k] !== mine[k]);
    if (diff.length > 0) {
      throw new Error(
        `window stream: cannot restore a state saved for a different stream (${
          diff.map((k) => `${k} ${state[k]} vs ${mine[k]}`).join(", ")
        }); use the same split, tokenizer, seqLen, seed and shuffle`,
      );
    }
    if (
      !Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.index) ||
      state.index < 0 || state.index > this.windowsPerEpoch
    ) {
      throw new Error(
        `window stream: bad position epoch ${state.epoch}, index ${state.index} ` +
          `(${this.windowsPerEpoch} windows per epoch)`,
      );
    }
    this.#epoch = state.epoch;
    this.#index = state.index;
    this.#order = epochOrder(this.windowsPerEpoch, this.#seed, this.#epoch, this.#shuffle);
  }
}

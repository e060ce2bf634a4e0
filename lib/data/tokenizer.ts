/**
 * The tokenizer interface shared by the data pipeline, and the simplest tokenizer: UTF-8
 * bytes (V = 256, no special tokens). The reduced BPE tokenizer is in `reduced_bpe.ts`.
 *
 * Contract: `decode(encode(text)) === text` for every string (lossless), and every id is
 * in `[0, vocabSize)`.
 */

/** Text ↔ token ids. */
export interface Tokenizer {
  /** Number of ids; every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** Token ids of `text`. */
  encode(text: string): number[];
  /** Text of `ids` (inverse of `encode`). */
  decode(ids: ArrayLike<number>): string;
}

/** Byte-level tokenizer: one id per UTF-8 byte, V = 256, no special tokens. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 256;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();

  /** The UTF-8 bytes of `text`. */
  encode(text: string): number[] {
    return Array.from(this.#encoder.encode(text));
  }

  /** UTF-8 decode of the bytes `ids` (invalid sequences become U+FFFD).
   * @throws RangeError for an id outside [0, 256). */
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < 256 && Number.isInteger(id))) {
        throw new RangeError(`byte tokenizer: id ${id} at position ${i} is not in [0, 256)`);
      }
      bytes[i] = id;
    }
    return this.#decoder.decode(bytes);
  }
}

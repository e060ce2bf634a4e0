/** A training sequence, as the data sources make it and the model takes it. */

/** One training sequence: S input ids and S targets (−100 = ignored). */
export interface Batch {
  /** Input token ids, (S) i32. */
  ids: Int32Array;
  /** Target token ids, (S) i32; −100 ignores a position. */
  targets: Int32Array;
}

import type * as tf from "../tf.js";

/**
 * A stateful inference run over one sequence: prefill a prompt, then decode token by token.
 * Full KV, the eviction methods and EdgeInfinite all implement it, so generation and evaluation treat them alike.
 */
export interface InferenceSession {
  /** Method name as shown in tables (e.g. "full", "streaming", "edgeinfinite"). */
  readonly method: string;
  /**
   * Feeds prompt tokens (may be called once, before any step); resolves to the logits of the last token [vocab].
   * Caller disposes. Asynchronous: an eviction method reads attention scores between layers, and a read is
   * asynchronous on webgpu. Await each call before the next.
   */
  prefill(ids: readonly number[]): Promise<tf.Tensor1D>;
  /** Feeds one token; resolves to its logits [vocab]. Caller disposes. */
  step(id: number): Promise<tf.Tensor1D>;
  /** Bytes of per-token KV state plus any fixed-size memory held now. */
  kvBytes(): number;
  /** Largest kvBytes() seen during this session. */
  peakKvBytes(): number;
  /** Tokens fed so far. */
  tokensSeen(): number;
  dispose(): void;
}

import * as tf from "../tf.js";
import type { LlamaModel } from "./model.js";
import { assertFinite } from "../util/finite.js";

/**
 * −log softmax(logits)[t, targets[t]] for every row t of `logits` [T, vocab]: the one token-NLL computation, shared
 * by evaluation (tokenNll) and training (tbptt's loss). Differentiable.
 */
export function nllFromLogits(logits: tf.Tensor2D, targets: readonly number[]): tf.Tensor1D {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.tensor1d(Array.from(targets), "int32"), logits.shape[1]);
    return tf.neg(tf.sum(tf.mul(logp, onehot), 1)) as tf.Tensor1D;
  });
}

/**
 * Per-token negative log-likelihood −log p(targets[t] | ·) from hidden states [T, D], computed in row chunks so the
 * [T, vocab] logits never exist at once for long inputs. Reads asynchronously (works on webgpu) and fails loudly
 * when a value is not finite or the webgpu device reported errors (`what` names the input in that message).
 */
export async function tokenNll(model: LlamaModel, hidden: tf.Tensor2D, targets: readonly number[], chunkRows = 512, what = "token NLL"): Promise<Float32Array> {
  const T = targets.length;
  const out = new Float32Array(T);
  for (let r0 = 0; r0 < T; r0 += chunkRows) {
    const n = Math.min(chunkRows, T - r0);
    const values = tf.tidy(() => {
      const logits = model.logits(tf.slice(hidden, [r0, 0], [n, hidden.shape[1]]));
      return nllFromLogits(logits, targets.slice(r0, r0 + n));
    });
    try {
      out.set((await values.data()) as Float32Array, r0);
    } finally {
      values.dispose();
    }
  }
  // NaN/±Inf logits give a non-finite NLL: checking the NLL checks the logits it was computed from.
  assertFinite(out, what);
  return out;
}

/**
 * NLL of every token of `ids` but the first with the plain backbone, in independent windows of `context` tokens
 * (each starting with BOS; with `bos` null, for tokenizers without one such as Qwen's, with the token before the
 * window's first scored one): what `edgeinf ppl --method full` reports.
 */
export async function windowedNll(model: LlamaModel, ids: readonly number[], context: number, bos: number | null): Promise<number[]> {
  if (!Number.isInteger(context) || context < 2) throw new Error(`context ${context} must be an integer ≥ 2`);
  const out: number[] = [];
  for (let s = 1; s < ids.length; s += context - 1) {
    const win = [bos ?? ids[s - 1]!, ...ids.slice(s, s + context - 1)];
    // The whole window goes through the forward, its last token too (its row is not scored): with a length-dependent
    // RoPE (dynamic NTK, longrope) the frequencies depend on the call's length, and transformers' NLL is the forward
    // of all the ids (test/cli-families.test.ts, llama-dynamic).
    const h = tf.tidy(() => {
      const all = model.forward(win);
      return tf.slice(all, [0, 0], [win.length - 1, all.shape[1]]);
    });
    try {
      out.push(...(await tokenNll(model, h, win.slice(1), 512, `NLL of tokens ${s}..${s + win.length - 2}`)));
    } finally {
      h.dispose();
    }
  }
  return out;
}

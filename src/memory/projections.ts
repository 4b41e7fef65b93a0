import * as tf from "../tf.js";

/**
 * Memory projections: one small d×d map per head applied to the Q, K or V that enter (or read) the memory,
 * initialised to the identity so an untrained module reads the backbone's own projections.
 * x [heads, T, d] · W [heads, d, d] → [heads, T, d].
 */
export function applyHeadMaps(x: tf.Tensor3D, maps: tf.Tensor3D): tf.Tensor3D {
  return tf.matMul(x, maps);
}

export function identityHeadMaps(heads: number, d: number): tf.Tensor3D {
  return tf.tidy(() => tf.tile(tf.eye(d).expandDims(0), [heads, 1, 1]) as tf.Tensor3D);
}

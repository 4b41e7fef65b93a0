/** Storage buffers per kernel: tf.addN within WebGPU's limit on storage buffers per shader stage. */
import * as tf from "../tf.js";

/**
 * Most inputs one tf.addN may take: tfjs-backend-webgpu binds every input as a storage buffer, and WebGPU's default
 * maxStorageBuffersPerShaderStage is 8 (one is the output). Past it Dawn rejects the shader (a device error, no
 * exception) and the sum is garbage.
 */
export const MAX_ADDN_INPUTS = 7;

/**
 * tf.addN over any number of tensors in chunks of at most MAX_ADDN_INPUTS inputs, in order: the running sum is the
 * first input of the next chunk, so the result equals one tf.addN on backends that sum inputs in order.
 */
export function addNLimited(tensors: tf.Tensor[]): tf.Tensor {
  if (tensors.length === 0) throw new Error("addNLimited: no tensors");
  return tf.tidy(() => {
    let acc = tensors.length <= MAX_ADDN_INPUTS ? tf.addN(tensors) : tf.addN(tensors.slice(0, MAX_ADDN_INPUTS));
    for (let i = MAX_ADDN_INPUTS; i < tensors.length; i += MAX_ADDN_INPUTS - 1) acc = tf.addN([acc, ...tensors.slice(i, i + MAX_ADDN_INPUTS - 1)]);
    return acc;
  });
}

/**
 * The one place that imports tfjs-core: registers chained ops (x.reshape(...)) and all gradients, which the
 * bare core package leaves out. Every module imports tf from here.
 */
// The union package's Node bundle registers gradients and chained ops on tfjs-core (the core bundle does not,
// and its deep ESM files cannot be imported by Node).
import "@tensorflow/tfjs";
export * from "@tensorflow/tfjs-core";

import { engine, env } from "@tensorflow/tfjs-core";

// PROD silences tfjs' "install tfjs-node" banner; our own log line says which backend runs and why.
env().set("PROD", true);

/**
 * Like tf.tidy for results that are not tensor containers (objects with numbers, states): every tensor created in
 * fn is disposed at the end unless fn called tf.keep on it.
 */
export function scoped<T>(fn: () => T): T {
  engine().startScope();
  try {
    return fn();
  } finally {
    engine().endScope();
  }
}

import * as tf from "../tf.js";
import { addNLimited } from "../backend/add-n.js";

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay of variables no group matches. */
  weightDecay: number;
  /** Per-variable learning rate and weight decay; the first group whose `match` finds the variable's name wins. */
  groups?: readonly AdamWGroup[];
}

/** Variables whose names `match` finds train with lr × lrScale and this weight decay. */
export interface AdamWGroup {
  match: RegExp;
  lrScale: number;
  weightDecay: number;
}

/**
 * AdamW (Loshchilov & Hutter) with explicit moment tensors, so its state is saved in checkpoints and a resumed run
 * continues bit-for-bit. Decoupled decay: θ ← θ − lr·(m̂/(√v̂+ε) + λθ), with lr and λ of the variable's group
 * (settings.groups) where one matches, else the step's lr and settings.weightDecay.
 */
export class AdamW {
  step = 0;
  readonly m = new Map<string, tf.Tensor>();
  readonly v = new Map<string, tf.Tensor>();

  constructor(readonly settings: AdamWSettings) {}

  apply(variables: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps } = this.settings;
    // The step's constants as scalar tensors made once, not once per variable and op: on webgpu each number in an op
    // is an upload through a fresh mapped buffer (on a lent H100, apply took about a third of an edge-lm module step,
    // much of it around these uploads). The same float32 values, so the same arithmetic as numbers.
    const scalars = new Map<number, tf.Scalar>();
    const scalar = (x: number): tf.Scalar => {
      let t = scalars.get(x);
      if (t === undefined) scalars.set(x, (t = tf.scalar(x)));
      return t;
    };
    const [b1, oneMinusB1, b2, oneMinusB2, epsT] = [beta1, 1 - beta1, beta2, 1 - beta2, eps].map(scalar) as [tf.Scalar, tf.Scalar, tf.Scalar, tf.Scalar, tf.Scalar];
    const bc1 = scalar(1 - Math.pow(beta1, this.step));
    const bc2 = scalar(1 - Math.pow(beta2, this.step));
    try {
      for (const [name, variable] of variables) {
        const g = grads.get(name);
        if (!g) continue;
        const group = this.groupOf(name);
        // Without a group the step's lr is used as is (not × 1): runs without groups stay bit-identical to before.
        const varLr = scalar(group ? lr * group.lrScale : lr);
        const weightDecay = group ? group.weightDecay : this.settings.weightDecay;
        const decay = weightDecay > 0 ? scalar(weightDecay) : null;
        const m0 = this.m.get(name);
        const v0 = this.v.get(name);
        const [m, v] = tf.tidy(() => {
          const m = tf.add(tf.mul(m0 ?? tf.zerosLike(g), b1), tf.mul(g, oneMinusB1));
          const v = tf.add(tf.mul(v0 ?? tf.zerosLike(g), b2), tf.mul(tf.square(g), oneMinusB2));
          const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), epsT));
          const decayed = decay ? tf.add(update, tf.mul(variable, decay)) : update;
          variable.assign(tf.sub(variable, tf.mul(decayed, varLr)));
          return [tf.keep(m), tf.keep(v)];
        });
        m0?.dispose();
        v0?.dispose();
        this.m.set(name, m!);
        this.v.set(name, v!);
      }
    } finally {
      tf.dispose([...scalars.values()]);
    }
  }

  /** The group that sets `name`'s learning rate and weight decay, if any. */
  groupOf(name: string): AdamWGroup | undefined {
    return this.settings.groups?.find((g) => g.match.test(name));
  }

  /** Host copies of the moments for a checkpoint (read asynchronously: works on webgpu). */
  async stateTensors(): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
    const entries = [...[...this.m].map(([k, t]) => [`m.${k}`, t] as const), ...[...this.v].map(([k, t]) => [`v.${k}`, t] as const)];
    const data = await Promise.all(entries.map(([, t]) => t.data() as Promise<Float32Array>));
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    entries.forEach(([name, t], i) => (out[name] = { shape: t.shape, data: data[i]! }));
    return out;
  }

  loadState(step: number, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    this.dispose();
    this.step = step;
    for (const [key, t] of tensors) {
      const target = key.startsWith("m.") ? this.m : key.startsWith("v.") ? this.v : null;
      if (!target) continue;
      target.set(key.slice(2), tf.tensor(t.data, t.shape));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/**
 * Scales gradients so their global L2 norm is at most maxNorm; resolves to the norm before clipping (read
 * asynchronously: works on webgpu).
 */
export async function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): Promise<number> {
  if (grads.size === 0) return 0;
  const squared = tf.tidy(() => addNLimited([...grads.values()].map((g) => tf.sum(tf.square(g)))));
  let norm: number;
  try {
    norm = Math.sqrt((await squared.data())[0] ?? 0);
  } finally {
    squared.dispose();
  }
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const [k, g] of grads) {
      grads.set(k, tf.tidy(() => tf.mul(g, scale)));
      g.dispose();
    }
  }
  return norm;
}

/** Largest |x − ref| relative to max(1, max |ref|): a float32 result against its float64 reference. */
export function maxRelError(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return diff / scale;
}

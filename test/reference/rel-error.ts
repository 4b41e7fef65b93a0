/**
 * Largest |x − ref| relative to max(floor, max |ref|): a float32 result against its float64 reference. The default
 * floor 1 keeps references near zero from inflating the ratio; floor 0 is relative to max |ref| alone.
 */
export function maxRelError(x: ArrayLike<number>, ref: ArrayLike<number>, floor = 1): number {
  let diff = 0;
  let scale = floor;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return diff / scale;
}

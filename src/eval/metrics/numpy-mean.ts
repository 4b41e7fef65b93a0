/**
 * `numpy.mean` of a float64 vector: numpy sums 1-D contiguous data with pairwise summation
 * (`pairwise_sum_DOUBLE`, block size 128, 8-way unrolled), then divides by n. Reproduced because
 * LongBench's `scorer_e` rounds `100 * np.mean(scores)` to 2 decimals, where summation order can
 * decide the last digit. Empty input → NaN, like numpy (which also warns).
 */
const PAIRWISE_BLOCK = 128;

function pairwiseSum(values: readonly number[], start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += values[start + i]!;
    return res;
  }
  if (n <= PAIRWISE_BLOCK) {
    const r = values.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let lane = 0; lane < 8; lane++) r[lane]! += values[start + i + lane]!;
    }
    let res = (r[0]! + r[1]! + (r[2]! + r[3]!)) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += values[start + i]!;
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwiseSum(values, start, half) + pairwiseSum(values, start + half, n - half);
}

export function numpyMean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return pairwiseSum(values, 0, values.length) / values.length;
}

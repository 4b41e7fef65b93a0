/**
 * `round(x, ndigits)` on a numpy float64 (numpy's `around`): y = x · 10^ndigits as a float
 * product, rounded half to even (`rint`), then divided back. Unlike Python's `round` on a float
 * (pythonRound), the tie is decided on the already-rounded product: 0.015 is stored just below
 * 0.015, so Python gives 0.01, but 0.015 · 100 is exactly 1.5 as a float and numpy gives 0.02.
 */
export function numpyRound(x: number, ndigits: number): number {
  if (!Number.isInteger(ndigits) || ndigits < 0 || ndigits > 15) {
    throw new RangeError(`numpyRound: ndigits must be an integer in [0, 15], got ${ndigits}`);
  }
  if (!Number.isFinite(x)) return x;
  const scale = 10 ** ndigits;
  return roundHalfEven(x * scale) / scale;
}

/** C `rint` in the default rounding mode: nearest integer, ties to even. */
function roundHalfEven(y: number): number {
  const below = Math.floor(y);
  const fraction = y - below; // exact for |y| < 2^52
  if (fraction < 0.5) return below;
  if (fraction > 0.5) return below + 1;
  return below % 2 === 0 ? below : below + 1;
}

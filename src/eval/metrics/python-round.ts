/**
 * Python 3 `round(x, ndigits)` for floats: correctly rounded from the exact binary value, ties to
 * even. `Number.prototype.toFixed` is also exact but breaks ties away from zero (and `Math.round`
 * towards +∞), so ties are detected and handled here.
 *
 * x is exactly halfway at `ndigits` decimals iff x·10^ndigits = k + 1/2, i.e. 2·x·10^ndigits =
 * (x·2^(ndigits+1))·5^ndigits is odd. x·2^(ndigits+1) is an exact float product and is dyadic, so
 * that holds iff x·2^(ndigits+1) is itself an odd integer.
 */
export function pythonRound(x: number, ndigits = 0): number {
  if (!Number.isInteger(ndigits) || ndigits < 0 || ndigits > 15) {
    throw new RangeError(`pythonRound: ndigits must be an integer in [0, 15], got ${ndigits}`);
  }
  if (!Number.isFinite(x)) return x;
  const doubled = x * 2 ** (ndigits + 1);
  const isTie = Number.isInteger(doubled) && Math.abs(doubled % 2) === 1;
  if (!isTie || Math.abs(x) >= 2 ** 52 / 10 ** ndigits) return Number(x.toFixed(ndigits));
  const scaled = x * 10 ** ndigits; // exactly k + 0.5 (representable in this magnitude range)
  const below = Math.floor(scaled);
  const even = below % 2 === 0 ? below : below + 1;
  return even / 10 ** ndigits;
}

/**
 * Python `difflib.SequenceMatcher(None, a, b).ratio()` (CPython 3.x, default `autojunk=True`),
 * over code points as Python indexes a `str`. This is what fuzzywuzzy's `fuzz.ratio` uses when
 * python-Levenshtein is not installed — the setup LongBench's requirements.txt gives.
 *
 * ratio = 2·M / T, M = total size of the matching blocks, T = len(a) + len(b) (1.0 when T = 0).
 */

interface Match {
  i: number;
  j: number;
  size: number;
}

/** `__chain_b`: positions of each element of b, minus "popular" elements (autojunk heuristic). */
function chainB(b: readonly string[]): Map<string, number[]> {
  const b2j = new Map<string, number[]>();
  b.forEach((elt, index) => {
    const indices = b2j.get(elt);
    if (indices) indices.push(index);
    else b2j.set(elt, [index]);
  });
  // autojunk: with len(b) >= 200, elements occurring more than 1% (+1) of the time are dropped.
  if (b.length >= 200) {
    const ntest = Math.floor(b.length / 100) + 1;
    for (const [elt, indices] of [...b2j]) if (indices.length > ntest) b2j.delete(elt);
  }
  return b2j;
}

/** `find_longest_match` with no junk function (isbjunk is always false; popular elements can still extend). */
function findLongestMatch(
  a: readonly string[],
  b: readonly string[],
  b2j: Map<string, number[]>,
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
): Match {
  let besti = alo;
  let bestj = blo;
  let bestsize = 0;
  let j2len = new Map<number, number>();
  for (let i = alo; i < ahi; i++) {
    const newj2len = new Map<number, number>();
    for (const j of b2j.get(a[i]!) ?? []) {
      if (j < blo) continue;
      if (j >= bhi) break;
      const k = (j2len.get(j - 1) ?? 0) + 1;
      newj2len.set(j, k);
      if (k > bestsize) {
        besti = i - k + 1;
        bestj = j - k + 1;
        bestsize = k;
      }
    }
    j2len = newj2len;
  }
  while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) {
    besti--;
    bestj--;
    bestsize++;
  }
  while (besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] === b[bestj + bestsize]) {
    bestsize++;
  }
  return { i: besti, j: bestj, size: bestsize };
}

/** Total size of `get_matching_blocks()` (merging adjacent blocks does not change the total). */
export function difflibMatchCount(a: readonly string[], b: readonly string[]): number {
  const b2j = chainB(b);
  const queue: Array<[number, number, number, number]> = [[0, a.length, 0, b.length]];
  let matches = 0;
  while (queue.length > 0) {
    const [alo, ahi, blo, bhi] = queue.pop()!;
    const { i, j, size } = findLongestMatch(a, b, b2j, alo, ahi, blo, bhi);
    if (size > 0) {
      matches += size;
      if (alo < i && blo < j) queue.push([alo, i, blo, j]);
      if (i + size < ahi && j + size < bhi) queue.push([i + size, ahi, j + size, bhi]);
    }
  }
  return matches;
}

export function difflibRatio(a: string, b: string): number {
  const aChars = Array.from(a);
  const bChars = Array.from(b);
  const length = aChars.length + bChars.length;
  if (length === 0) return 1.0;
  return (2.0 * difflibMatchCount(aChars, bChars)) / length;
}

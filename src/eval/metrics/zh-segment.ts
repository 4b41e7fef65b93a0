import { cut } from "jieba-wasm";

/**
 * Chinese word segmentation as LongBench's `jieba.cut(text, cut_all=False)` (Python jieba 0.42.1,
 * default dictionary, HMM on). We call jieba-rs (npm `jieba-wasm`, same dictionary and HMM model)
 * and correct the one place where it departs from Python jieba: runs of ASCII letters, digits and
 * `+#&._%-` that fall between Chinese characters are split by Python's finalseg regex
 * `[a-zA-Z0-9]+(?:\.\d+)?%?`, whereas jieba-rs leaves the dot unescaped (so "100%2023" stays one
 * token there; Python gives "100%", "2023"). Checked against Python jieba on the committed
 * differential fixtures (test/fixtures/longbench-official).
 */
const HAN = /[\u4E00-\u9FD5]/u;
/** Characters that Python jieba's `re_han_default` keeps inside a block besides Han ones. */
const BLOCK_ASCII = /^[a-zA-Z0-9+#&._%-]+$/;
/** Python jieba finalseg `re_skip`, used with `re.split` (captured pieces are kept). */
const FINALSEG_SKIP = /([a-zA-Z0-9]+(?:\.[0-9]+)?%?)/;
/** The default dictionary's words without a Han character: jieba routes them as words, not via finalseg. */
const ASCII_DICT_WORDS: ReadonlySet<string> = new Set(["AT&T", "C#", "C++", "c#", "c++"]);

function isFinalsegAscii(token: string): boolean {
  return BLOCK_ASCII.test(token) && !ASCII_DICT_WORDS.has(token) && !HAN.test(token);
}

/** Python `re.split` with one capturing group, empty pieces dropped (finalseg yields only non-empty ones). */
function finalsegSplit(text: string): string[] {
  return text.split(FINALSEG_SKIP).filter((piece) => piece.length > 0);
}

export function segmentZh(text: string): string[] {
  const tokens = cut(text, true);
  const out: string[] = [];
  let run = "";
  for (const token of tokens) {
    if (isFinalsegAscii(token)) {
      run += token;
      continue;
    }
    if (run.length > 0) out.push(...finalsegSplit(run));
    run = "";
    out.push(token);
  }
  if (run.length > 0) out.push(...finalsegSplit(run));
  return out;
}

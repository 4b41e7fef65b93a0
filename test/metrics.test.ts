/**
 * LongBench metric ports. Every expected value below is derived by hand from the Python source
 * (THUDM/LongBench LongBench/metrics.py + eval.py, pltrdy/rouge 1.0.1, fuzzywuzzy 0.18 with
 * difflib, numpy's pairwise sum, RULER string_match_*), with the derivation in a comment.
 */
import * as fuzzball from "fuzzball";
import { describe, expect, it } from "vitest";
import { EdgeInfError } from "../src/util/errors.js";
import {
  classificationScore,
  codeSimScore,
  countScore,
  dataset2metric,
  difflibRatio,
  exactMatchScore,
  firstCodeLine,
  fuzzRatio,
  knownDatasets,
  normalizeAnswer,
  normalizeZhAnswer,
  normalizedExactMatchScore,
  numpyMean,
  perplexityFromNll,
  pythonRound,
  qaF1Score,
  qaF1ZhScore,
  retrievalScore,
  retrievalZhScore,
  rougeScore,
  rougeZhScore,
  scoreDataset,
  scoreDatasetByLength,
  scorePrediction,
  segmentZh,
  stringMatchAll,
  stringMatchPart,
  type PredictionRow,
} from "../src/eval/metrics/index.js";

/** pltrdy's F for given P and R: 2·((P·R)/(P + R + 1e-8)). */
const rougeF = (p: number, r: number): number => 2.0 * ((p * r) / (p + r + 1e-8));

describe("normalizeAnswer (normalize_answer)", () => {
  it("lowers, strips punctuation, drops articles, fixes whitespace", () => {
    // "The Cat!" → lower "the cat!" → no punct "the cat" → articles " cat" → split/join "cat"
    expect(normalizeAnswer("The Cat!")).toBe("cat");
    // "  An  apple,   a DAY " → "  an  apple   a day " → "    apple     day " → "apple day"
    expect(normalizeAnswer("  An  apple,   a DAY ")).toBe("apple day");
  });
  it("removes punctuation BEFORE articles (LongBench's order)", () => {
    // "The-end" → "the-end" → "theend" (hyphen gone first) → no whole-word "the" left
    expect(normalizeAnswer("The-end")).toBe("theend");
    // "the_cat": '_' is in string.punctuation → "thecat"
    expect(normalizeAnswer("the_cat")).toBe("thecat");
  });
  it("uses Python's Unicode word boundary and whitespace", () => {
    // Python \b: 'é' is a word character, so "the" inside "éthe" is not a whole word; " a" is.
    expect(normalizeAnswer("éthe a")).toBe("éthe");
    // Python str.split() splits on U+001C but not on U+FEFF (JavaScript's \s would do the opposite)
    expect(normalizeAnswer("x\u001cy\ufeffz")).toBe("x y\ufeffz");
  });
});

describe("normalizeZhAnswer (normalize_zh_answer)", () => {
  it("removes ASCII + Chinese punctuation and every whitespace", () => {
    // "你好，世界！ A.B" → lower "你好，世界！ a.b" → drop "，" "！" "." → "你好世界 ab" → "你好世界ab"
    expect(normalizeZhAnswer("你好，世界！ A.B")).toBe("你好世界ab");
    // articles are NOT removed in the zh variant
    expect(normalizeZhAnswer("the 《书》")).toBe("the《书");
  });
});

describe("qaF1Score (qa_f1_score)", () => {
  it("is 1 after normalization", () => {
    expect(qaF1Score("The Cat!", "cat")).toBe(1);
  });
  it("partial overlap: P = 2/3, R = 1/2 → F1 = 4/7", () => {
    // pred tokens [cat, sat, down]; gt "a cat sat on mats" → [cat, sat, on, mats]
    // overlap {cat, sat} = 2 → P = 2/3, R = 2/4 → F1 = 2·(1/3)/(7/6) = 4/7 = 0.571428...
    expect(qaF1Score("cat sat down", "a cat sat on mats")).toBeCloseTo(4 / 7, 14);
  });
  it("counts overlap as a multiset (Counter &)", () => {
    // [cat, cat, cat] vs [cat, cat, dog]: overlap min(3,2) = 2 → P = R = 2/3 → F1 = 2/3
    expect(qaF1Score("the cat cat cat", "cat cat dog")).toBeCloseTo(2 / 3, 14);
  });
  it("is 0 for an empty prediction or one that normalizes to nothing", () => {
    expect(qaF1Score("", "cat")).toBe(0);
    expect(qaF1Score("the a an", "cat")).toBe(0);
  });
});

describe("qaF1ZhScore (qa_f1_zh_score with Intl.Segmenter for jieba)", () => {
  it("segments Chinese into words", () => {
    // The expected values below rely on this segmentation (ICU's dictionary).
    expect(segmentZh("我爱北京")).toEqual(["我", "爱", "北京"]);
    expect(segmentZh("北京天安门")).toEqual(["北京", "天安门"]);
  });
  it("drops tokens that normalize to empty and scores token F1", () => {
    // ["北京", "。"] → ["北京", ""] → ["北京"]; vs ["北京"] → 1
    expect(qaF1ZhScore("北京。", "北京")).toBe(1);
    // [我, 爱, 北京] vs [北京, 天安门]: overlap 1 → P = 1/3, R = 1/2 → F1 = (1/3)/(5/6) = 0.4
    expect(qaF1ZhScore("我爱北京", "北京天安门")).toBeCloseTo(0.4, 14);
    expect(qaF1ZhScore("", "北京")).toBe(0);
  });
});

describe("rougeScore (rouge 1.0.1 ROUGE-L F, exclusive)", () => {
  it("identical text gives 2/(2+1e-8), not 1", () => {
    // P = R = 1 → F = 2·(1/(2 + 1e-8))
    expect(rougeScore("the cat sat on the mat", "the cat sat on the mat")).toBe(rougeF(1, 1));
    expect(rougeF(1, 1)).toBeLessThan(1);
  });
  it("partial match with distinct-word counts", () => {
    // ref words {the,cat,was,under,bed} m = 5; hyp {the,cat,was,found,under,bed} n = 6
    // LCS(ref, hyp) = the cat was under the bed → word set of 5 → R = 5/5, P = 5/6
    expect(rougeScore("the cat was found under the bed", "the cat was under the bed")).toBe(rougeF(5 / 6, 1));
  });
  it("repeated words count once (exclusive=True)", () => {
    // hyp {cat} n = 1, ref {cat} m = 1, LCS {cat} → P = R = 1
    expect(rougeScore("cat cat cat", "cat")).toBe(rougeF(1, 1));
  });
  it("unions LCS words across sentences split on '.'", () => {
    // ref sentences [cat ran, dog sat], hyp [cat sat, dog ran]; m = n = 4
    // ref1: LCS with "cat sat" = {cat}, with "dog ran" = {ran} → +2; ref2: {sat}, {dog} → +2
    // llcs = 4 → P = R = 1
    expect(rougeScore("cat sat. dog ran", "cat ran. dog sat")).toBe(rougeF(1, 1));
  });
  it("returns 0 where the package raises (no sentence)", () => {
    expect(rougeScore("", "the cat")).toBe(0);
    expect(rougeScore("...", "the cat")).toBe(0);
    expect(rougeScore("the cat", "")).toBe(0);
  });
  it("whitespace-only prediction is one empty sentence: no overlap → 0", () => {
    // " " → sentences [""] (kept, since len(" ") > 0) → n = |{""}| = 1, llcs = 0 → F = 0
    expect(rougeScore(" ", "the cat")).toBe(0);
  });
});

describe("rougeZhScore", () => {
  it("joins segmented words with spaces before ROUGE-L", () => {
    expect(rougeZhScore("我爱北京", "我爱北京")).toBe(rougeF(1, 1));
    // "我 爱 北京" vs "我 爱 天安门": m = n = 3, LCS {我, 爱} = 2 → P = R = 2/3
    expect(rougeZhScore("我爱北京", "我爱天安门")).toBe(rougeF(2 / 3, 2 / 3));
    expect(rougeZhScore("", "北京")).toBe(0);
  });
});

describe("classificationScore (classification_score)", () => {
  it("drops a matched class that is a substring of the ground truth", () => {
    // em = [Location, Other Location]; "Location" ⊂ gt and ≠ gt → removed → [Other Location] → 1/1
    expect(classificationScore("Other Location", "Other Location", ["Location", "Other Location"])).toBe(1);
  });
  it("reproduces Python's remove-while-iterating skip", () => {
    // em = [Loc, Location, Other Location]. i=0 "Loc" ⊂ gt → removed → [Location, Other Location];
    // i=1 is now "Other Location" (== gt, kept); "Location" was never examined.
    // → 1 / len([Location, Other Location]) = 0.5 (a filter would give 1)
    expect(classificationScore("Other Location", "Other Location", ["Loc", "Location", "Other Location"])).toBe(0.5);
  });
  it("splits credit among matched classes", () => {
    // em = [Location, Human]; neither removed → gt in list → 1/2
    expect(classificationScore("Location or Human", "Location", ["Location", "Human", "Entity"])).toBe(0.5);
    // gt "Location": em = [Location, Other Location]; "Other Location" ⊄ "Location" → kept → 1/2
    expect(classificationScore("Other Location", "Location", ["Location", "Other Location"])).toBe(0.5);
  });
  it("is 0 when the ground truth is not matched; errors without classes", () => {
    expect(classificationScore("Human", "Location", ["Location", "Human"])).toBe(0);
    expect(() => classificationScore("Human", "Location", null)).toThrow(EdgeInfError);
  });
});

describe("retrievalScore / retrievalZhScore / countScore", () => {
  it("fraction of digit runs equal to the paragraph id", () => {
    expect(retrievalScore("Paragraph 12", "Paragraph 12")).toBe(1);
    // digit runs ["1", "2", "12"]; one equals "12" → 1/3
    expect(retrievalScore("Paragraph 1, 2 or 12", "Paragraph 12")).toBeCloseTo(1 / 3, 15);
    expect(retrievalScore("I do not know", "Paragraph 12")).toBe(0);
    // Python's \d is Unicode: "١٢" (Arabic-Indic) is a digit run but ≠ "12" → runs [١٢, 12] → 1/2
    expect(retrievalScore("Paragraph ١٢ or 12", "Paragraph 12")).toBe(0.5);
  });
  it("errors when the ground truth has no paragraph id (Python IndexError)", () => {
    expect(() => retrievalScore("12", "Abstract 12")).toThrow(EdgeInfError);
  });
  it("zh uses 段落N", () => {
    // runs ["3", "13"] vs id "13" → 1/2
    expect(retrievalZhScore("段落3和段落13", "段落13")).toBe(0.5);
  });
  it("count compares digit runs as strings", () => {
    // runs ["13", "12"] → 1/2
    expect(countScore("There are 13 unique paragraphs, not 12", "13")).toBe(0.5);
    expect(countScore("013", "13")).toBe(0);
    expect(countScore("thirteen", "13")).toBe(0);
  });
});

describe("codeSimScore (code_sim_score) and fuzz.ratio", () => {
  it("skips leading newlines and lines containing ` # //", () => {
    const prediction = "\n\n# comment\n```python\nx = 1  // y\nreturn a\n";
    expect(firstCodeLine(prediction)).toBe("return a");
    // equal strings → fuzz.ratio 100 → 1
    expect(codeSimScore(prediction, "return a")).toBe(1);
  });
  it("no code line → '' → ratio with a non-empty gt is 0; with '' it is 100 (equivalence check first)", () => {
    expect(codeSimScore("# only a comment", "x = 1")).toBe(0);
    expect(codeSimScore("# only a comment", "")).toBe(1);
  });
  it("difflib ratio: 2M/T", () => {
    // "abcd" vs "bcde": longest block "bcd" (3); nothing left on either side → 2·3/8
    expect(difflibRatio("abcd", "bcde")).toBe(0.75);
    expect(codeSimScore("abcd", "bcde")).toBe(0.75);
  });
  it("rounds 100·ratio half-to-even like Python's round", () => {
    // "abcdefgh" vs "aijklmno": one block "a" → 2·1/16 = 0.125 → 12.5 → round → 12 (fuzzball: 13)
    expect(fuzzRatio("abcdefgh", "aijklmno")).toBe(12);
    expect(codeSimScore("abcdefgh", "aijklmno")).toBe(0.12);
  });
  it("matches fuzzball's independent difflib port where no rounding tie occurs", () => {
    // Deterministic pseudo-random strings; ≥ 200 chars exercises difflib's autojunk rule.
    let seed = 12345;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const randomString = (alphabet: string, length: number): string =>
      Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join("");
    let compared = 0;
    for (let trial = 0; trial < 120; trial++) {
      const long = trial % 2 === 0;
      const a = randomString("abcde fgh(){};", long ? 200 + Math.floor(next() * 150) : 1 + Math.floor(next() * 40));
      const b = randomString("abcde xyz(){};", long ? 200 + Math.floor(next() * 150) : 1 + Math.floor(next() * 40));
      const hundredRatio = 100 * difflibRatio(a, b);
      if (hundredRatio - Math.floor(hundredRatio) === 0.5 || a === b) continue;
      expect(fuzzRatio(a, b)).toBe(fuzzball.ratio(a, b, { ratio_alg: "difflib", full_process: false }));
      compared++;
    }
    expect(compared).toBeGreaterThan(100);
  });
});

describe("exact match, perplexity, string match", () => {
  it("exact match strips whitespace; normalized variant uses normalize_answer", () => {
    expect(exactMatchScore("  Paris \n", "Paris")).toBe(1);
    expect(exactMatchScore("paris", "Paris")).toBe(0);
    expect(normalizedExactMatchScore("The Paris!", "paris")).toBe(1);
    expect(normalizedExactMatchScore("Paris, France", "paris")).toBe(0);
  });
  it("perplexity = exp(mean NLL)", () => {
    // exp((ln 2 + ln 8)/2) = exp(ln 4) = 4
    expect(perplexityFromNll([Math.log(2), Math.log(8)])).toBeCloseTo(4, 12);
    expect(() => perplexityFromNll([])).toThrow(EdgeInfError);
  });
  it("RULER string_match_all / part are case-insensitive substring checks", () => {
    // "123" and "456" found, "789" not → 2/3
    expect(stringMatchAll("The values are 123 and 456", ["123", "456", "789"])).toBeCloseTo(2 / 3, 15);
    expect(stringMatchPart("The values are 123 and 456", ["123", "456", "789"])).toBe(1);
    expect(stringMatchAll("the magic word is ALPHA", ["alpha"])).toBe(1);
    expect(stringMatchPart("nothing here", ["alpha", "beta"])).toBe(0);
    expect(() => stringMatchAll("x", [])).toThrow(EdgeInfError);
  });
});

describe("dataset2metric and scorePrediction", () => {
  it("maps LongBench datasets as eval.py does", () => {
    expect(dataset2metric.multifieldqa_zh).toBe("qa_f1_zh");
    expect(dataset2metric.dureader).toBe("rouge_zh");
    expect(dataset2metric.vcsum).toBe("rouge_zh");
    expect(dataset2metric.trec).toBe("classification");
    expect(dataset2metric.lsht).toBe("classification");
    expect(dataset2metric.passage_count).toBe("count");
    expect(dataset2metric["repobench-p"]).toBe("code_sim");
    expect(dataset2metric.samsum).toBe("rouge");
    expect(dataset2metric.variable_tracking).toBe("string_match_all");
    expect(dataset2metric["variable-tracking"]).toBe("string_match_all");
    // 21 LongBench datasets + 5 synthetic tasks + 3 hyphenated spellings of the synthetic generator
    expect(knownDatasets.length).toBe(21 + 5 + 3);
  });
  it("applies the first-line rule only to trec/triviaqa/samsum/lsht", () => {
    const prediction = "\n\nParis\nThe answer is London";
    // triviaqa: "Paris" vs "London" → 0
    expect(scorePrediction("triviaqa", prediction, ["London"], null)).toBe(0);
    // narrativeqa: whole text → [paris, answer, is, london] vs [london] → P = 1/4, R = 1 → F1 = 0.4
    expect(scorePrediction("narrativeqa", prediction, ["London"], null)).toBeCloseTo(0.4, 14);
  });
  it("takes the max over ground truths, 0 with none", () => {
    // "dog" → 0; "cat sat down": P = 2/2, R = 2/3 → F1 = (4/3)/(5/3) = 0.8
    expect(scorePrediction("hotpotqa", "cat sat", ["dog", "cat sat down"], null)).toBeCloseTo(0.8, 14);
    expect(scorePrediction("hotpotqa", "cat sat", [], null)).toBe(0);
  });
  it("scores synthetic tasks over the whole answer list", () => {
    expect(scorePrediction("multi_needle", "needles: 42, 7", ["42", "7", "99", "13"])).toBe(0.5);
  });
  it("rejects unknown datasets, listing the known ones", () => {
    expect(() => scorePrediction("nope", "x", ["x"], null)).toThrow(/unknown task "nope".*narrativeqa/);
  });
});

describe("scoreDataset (scorer) and scoreDatasetByLength (scorer_e)", () => {
  const row = (pred: string, answer: string, length?: number): PredictionRow => ({
    pred,
    answers: [answer],
    all_classes: null,
    ...(length === undefined ? {} : { length }),
  });
  it("round(100·Σ/n, 2)", () => {
    // scores [1, 0, 0] → 100/3 = 33.333… → 33.33
    expect(scoreDataset("passage_count", [row("5", "5"), row("1", "5"), row("2", "5")])).toBe(33.33);
  });
  it("rounds an exact tie to even, like Python", () => {
    // 25 rows: three score 1, one scores 1/32 (32 digit runs, one equal to "5"), 21 score 0.
    // Σ = 3.03125 → 100·Σ/25 = 303.125/25 = 12.125 exactly → Python round(12.125, 2) = 12.12
    const rows = [
      row("5", "5"),
      row("5", "5"),
      row("5", "5"),
      row(["5", ...Array(31).fill("0")].join(" "), "5"),
      ...Array.from({ length: 21 }, () => row("0", "7")),
    ];
    expect(scoreDataset("passage_count", rows)).toBe(12.12);
  });
  it("errors on no rows", () => {
    expect(() => scoreDataset("passage_count", [])).toThrow(EdgeInfError);
  });
  it("buckets by length < 4000, < 8000, else; empty bucket is NaN", () => {
    const rows = [row("5", "5", 3999), row("1", "5", 4000), row("5", "5", 7999)];
    // 0-4k: [1] → 100; 4-8k: [0, 1] → 50; 8k+: [] → nan
    const byLength = scoreDatasetByLength("passage_count", rows);
    expect(byLength["0-4k"]).toBe(100);
    expect(byLength["4-8k"]).toBe(50);
    expect(byLength["8k+"]).toBeNaN();
    expect(scoreDatasetByLength("passage_count", [row("5", "5", 8000)])["8k+"]).toBe(100);
  });
});

describe("numpyMean and pythonRound", () => {
  it("sums pairwise in 8 lanes like numpy (n = 9)", () => {
    // lanes r0..r7 = [1e16, 1, 1, 1, 1, 1, 1, 1]; res = ((r0+r1)+(r2+r3)) + ((r4+r5)+(r6+r7))
    // r0+r1 = 1e16 (1e16+1 is a tie, rounds to even 1e16); +2 → 1e16+2; +4 → 1e16+6; then + (-1e16) = 6
    // mean = 6/9. (A left-to-right sum loses every 1 and gives 0.)
    expect(numpyMean([1e16, 1, 1, 1, 1, 1, 1, 1, -1e16])).toBe(6 / 9);
    // n < 8: plain left-to-right sum
    expect(numpyMean([1e16, 1, 1, -1e16])).toBe(0);
    expect(numpyMean([])).toBeNaN();
  });
  it("rounds half to even on exact binary ties only", () => {
    expect(pythonRound(0.125, 2)).toBe(0.12); // exact tie → even
    expect(pythonRound(0.375, 2)).toBe(0.38); // exact tie → even
    expect(pythonRound(-0.125, 2)).toBe(-0.12);
    expect(pythonRound(2.675, 2)).toBe(2.67); // 2.675 is 2.67499999… in binary
    expect(pythonRound(1.005, 2)).toBe(1); // 1.00499999…
    expect(pythonRound(12.5)).toBe(12);
    expect(pythonRound(13.5)).toBe(14);
    expect(pythonRound(33.333333, 2)).toBe(33.33);
  });
});

import { fail } from "../../util/errors.js";

// LongBench metrics.py `classification_score`, ported from THUDM/LongBench (MIT).

/**
 * Classes that occur as substrings of the prediction; then drop a match that is a substring of the
 * ground truth but not the ground truth itself. Python removes from the list *while iterating it*,
 * so the element right after a removed one is never examined — reproduced here because it changes
 * scores when two such classes are adjacent. Score = 1/len(matches) when the ground truth is among
 * the matches, else 0.
 */
export function classificationScore(
  prediction: string,
  groundTruth: string,
  allClasses: readonly string[] | null,
): number {
  if (allClasses === null) {
    fail("classification metric: all_classes is null", "the record must list its label set in all_classes");
  }
  const emMatchList = allClasses.filter((className) => prediction.includes(className));
  // Python list iterator: index advances past the slot that `remove` just refilled.
  for (let index = 0; index < emMatchList.length; index++) {
    const matchTerm = emMatchList[index]!;
    if (groundTruth.includes(matchTerm) && matchTerm !== groundTruth) {
      emMatchList.splice(emMatchList.indexOf(matchTerm), 1); // list.remove: first equal element
    }
  }
  return emMatchList.includes(groundTruth) ? 1.0 / emMatchList.length : 0.0;
}

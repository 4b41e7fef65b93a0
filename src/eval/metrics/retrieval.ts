import { paragraphIdScore } from "./paragraph-id.js";

// LongBench metrics.py `retrieval_score`, ported from THUDM/LongBench (MIT).

/** Python `re.findall(r'Paragraph (\d+)', ground_truth)[0]`; Python's `\d` is Unicode `Nd`. */
const PARAGRAPH_ID = /Paragraph (\p{Nd}+)/u;

/** Fraction of the prediction's digit runs equal to the id in "Paragraph N". */
export function retrievalScore(prediction: string, groundTruth: string): number {
  return paragraphIdScore(prediction, groundTruth, PARAGRAPH_ID, "retrieval");
}

import { fail } from "../../util/errors.js";

/** Perplexity = exp(mean per-token negative log-likelihood, in nats). */
export function perplexityFromNll(nlls: readonly number[]): number {
  if (nlls.length === 0) fail("perplexityFromNll: no token NLLs given", "score at least one target token");
  let sum = 0;
  for (const nll of nlls) {
    if (!Number.isFinite(nll)) fail(`perplexityFromNll: token NLL ${nll} is not finite`, "check the model's logits for NaN/Inf");
    sum += nll;
  }
  return Math.exp(sum / nlls.length);
}

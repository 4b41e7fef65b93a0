import { fail } from "../util/errors.js";

/**
 * A method's KV budget in tokens for a prompt of `promptTokens`: a token count (integer ≥ 1, as a number or a
 * numeric string) or a share of the prompt ("25%", or a number in (0, 1)) → round(share · promptTokens).
 * A budget that would keep the whole prompt is refused: the method would evict nothing and equal `full` — unless
 * the method evicts while decoding (`evictsWhileDecoding`), where a short prompt with a long generation still
 * reaches the budget.
 */
export function resolveBudget(budget: number | string, promptTokens: number, method = "this method", evictsWhileDecoding = false): number {
  const tokens = budgetTokens(budget, promptTokens, method);
  if (tokens < 1) {
    fail(`budget ${budget} of a ${promptTokens}-token prompt is 0 tokens for method ${method}`, "use a larger budget");
  }
  if (tokens >= promptTokens && !evictsWhileDecoding) {
    fail(
      `budget ${tokens} tokens ≥ prompt length ${promptTokens} for method ${method}: nothing would be evicted`,
      "use a smaller budget or `full` (streaming, h2o and tova, which evict while decoding, take any budget)",
    );
  }
  return tokens;
}

function budgetTokens(budget: number | string, promptTokens: number, method: string): number {
  const bad = (): never =>
    fail(`budget ${JSON.stringify(budget)} for method ${method} is neither a token count nor a share`, 'write e.g. 512, "25%" or 0.25');
  if (typeof budget === "string") {
    const text = budget.trim();
    if (text.endsWith("%")) {
      const percent = Number(text.slice(0, -1));
      if (text.length < 2 || !Number.isFinite(percent) || percent <= 0 || percent > 100) bad();
      return Math.round((percent / 100) * promptTokens);
    }
    if (text === "" || !Number.isFinite(Number(text))) bad(); // before Number(): "abc" would be worded as null (NaN)
    return budgetTokens(Number(text), promptTokens, method);
  }
  if (typeof budget !== "number" || !Number.isFinite(budget) || budget <= 0) return bad();
  if (budget < 1) return Math.round(budget * promptTokens);
  if (!Number.isInteger(budget)) return bad();
  return budget;
}

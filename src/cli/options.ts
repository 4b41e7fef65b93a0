import { EdgeInfError } from "../util/errors.js";

/**
 * Checks of numeric CLI options that yargs parses but does not judge: `--seed abc` arrives as NaN, `-t NaN` as NaN,
 * `--top-p 2` as 2. Each bad value is one error line naming the option, the value as typed and a valid example.
 */

/** The value as the user typed it (yargs has already made "abc" into NaN; the raw argv still has it). */
function typed(flag: string, value: unknown): string {
  if (typeof value === "number" && Number.isNaN(value)) {
    const argv = process.argv;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
      if (a === flag && i + 1 < argv.length) return argv[i + 1]!;
    }
  }
  return String(value);
}

export interface NumberRule {
  integer?: boolean;
  min?: number;
  /** `min` itself is not allowed. */
  minExclusive?: boolean;
  max?: number;
  example: string;
}

/** Throws one EdgeInfError line when `value` (from `flag`) is not a finite number obeying `rule`; undefined passes. */
export function checkNumberOption(flag: string, value: unknown, rule: NumberRule): void {
  if (value === undefined) return;
  const n = value as number;
  const ok =
    typeof n === "number" &&
    Number.isFinite(n) &&
    (!rule.integer || Number.isInteger(n)) &&
    (rule.min === undefined || (rule.minExclusive ? n > rule.min : n >= rule.min)) &&
    (rule.max === undefined || n <= rule.max);
  if (ok) return;
  const kind = rule.integer ? "an integer" : "a number";
  const range =
    rule.min !== undefined && rule.max !== undefined
      ? ` in ${rule.minExclusive ? "(" : "["}${rule.min}, ${rule.max}]`
      : rule.min !== undefined
        ? ` ${rule.minExclusive ? ">" : "≥"} ${rule.min}`
        : "";
  throw new EdgeInfError(`${flag} ${typed(flag, value)} must be ${kind}${range}`, `e.g. ${flag} ${rule.example}`);
}

export interface SamplingArgs {
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/** --temperature, --top-k, --top-p and --seed of `edgeinf generate`. */
export function checkSamplingOptions(a: SamplingArgs): void {
  checkNumberOption("--temperature", a.temperature, { min: 0, example: "0.8 (0 = greedy)" });
  checkNumberOption("--top-k", a.topK, { integer: true, min: 1, example: "40" });
  checkNumberOption("--top-p", a.topP, { min: 0, minExclusive: true, max: 1, example: "0.9" });
  checkNumberOption("--seed", a.seed, { integer: true, min: 0, max: 0xffffffff, example: "42" }); // the PRNG state is 32 bits
}

/** An option that only some methods read: refuse it elsewhere rather than ignore it silently. */
export function checkMethodOption(flag: string, given: boolean, method: string, methods: readonly string[] | ((m: string) => boolean), usedBy: string): void {
  if (!given) return;
  const applies = typeof methods === "function" ? methods(method) : methods.includes(method);
  if (!applies) throw new EdgeInfError(`${flag} does nothing with --method ${method}`, `${flag} is for ${usedBy}; drop it or pick such a method`);
}

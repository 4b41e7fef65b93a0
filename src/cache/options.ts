import { fail } from "../util/errors.js";

/** A whole-number option of a method, at least `min`; one-line EdgeInfError otherwise. */
export function requireCount(method: string, name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    fail(`method ${method}: ${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`, `set ${name} to a whole number ≥ ${min}`);
  }
  return value;
}

/** Like requireCount, with a default when the option is absent. */
export function countOr(method: string, name: string, value: unknown, fallback: number, min: number): number {
  return value === undefined ? fallback : requireCount(method, name, value, min);
}

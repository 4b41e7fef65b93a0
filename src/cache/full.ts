import type { CachePolicy } from "./policy.js";

/** Full KV: keeps every token (the reference every other method is compared with). */
export function fullPolicy(): CachePolicy {
  return {
    name: "full",
    compress: () => {},
    budgetFor: () => Infinity,
  };
}

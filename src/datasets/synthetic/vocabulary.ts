import type { Rng } from "../../util/rng.js";
import { fail } from "../../util/errors.js";

/** Word lists for keys and names; short common words so keys stay a few tokens long. */
export const ADJECTIVES = [
  "red", "blue", "green", "quiet", "brave", "happy", "lazy", "clever", "gentle", "wild",
  "silver", "golden", "tiny", "giant", "swift", "sleepy", "proud", "shy", "bright", "dark",
  "calm", "fierce", "jolly", "lucky", "noble", "old", "young", "rough", "smooth", "sharp",
] as const;

export const ANIMALS = [
  "cat", "dog", "fox", "owl", "bear", "wolf", "deer", "horse", "mouse", "rabbit",
  "tiger", "lion", "eagle", "otter", "badger", "goose", "duck", "frog", "snake", "whale",
  "seal", "crow", "hawk", "lamb", "goat", "pig", "cow", "bee", "ant", "moth",
] as const;

export const NAMES = [
  "Alice", "Arthur", "Beatrice", "Charles", "Clara", "Daniel", "Edith", "Edward", "Eleanor", "Frank",
  "George", "Grace", "Harold", "Helen", "Henry", "Isaac", "Jane", "John", "Laura", "Lucy",
  "Margaret", "Martin", "Mary", "Oliver", "Peter", "Robert", "Rose", "Samuel", "Thomas", "Walter",
] as const;

const UPPERCASE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** A number with a digit count drawn from `digits` (inclusive), no leading zero, as a string. */
export function randomNumber(rng: Rng, digits: readonly [number, number]): string {
  const length = rng.range(digits[0], digits[1]);
  let out = String(rng.range(1, 9));
  for (let i = 1; i < length; i++) out += String(rng.int(10));
  return out;
}

/** `count` distinct items made by `make`; fails if the space of items is too small. */
export function distinct<T>(count: number, make: () => T, what: string): T[] {
  const seen = new Set<T>();
  for (let attempts = 0; seen.size < count; attempts++) {
    if (attempts > count * 100) fail(`cannot draw ${count} distinct ${what}`, `ask for fewer ${what}`);
    seen.add(make());
  }
  return [...seen];
}

export const randomKey = (rng: Rng): string => `${rng.pick(ADJECTIVES)}-${rng.pick(ANIMALS)}`;
export const randomName = (rng: Rng): string => rng.pick(NAMES);
/** RULER-style variable name: five uppercase letters. */
export const randomVariable = (rng: Rng): string =>
  Array.from({ length: 5 }, () => UPPERCASE[rng.int(UPPERCASE.length)]!).join("");

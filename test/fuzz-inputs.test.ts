/**
 * Seeded property-based fuzzing (fast-check) of the readers of user-supplied files: the safetensors header parser,
 * config.json validation, the llama2.c header, recipe and suite YAML, and LongBench JSONL rows. Every generated input
 * must either load or fail with an EdgeInfError whose message is one line (what the CLI prints as its single
 * `error:` line) — never another exception (a stack trace at the CLI), and never an allocation sized by a number
 * the file claims (those claims go up to 2^40 here: such an allocation would throw RangeError or blow the memory
 * bound checked after each property). Each property stops after its time budget; the whole file takes ~30 s.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import fc from "fast-check";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { EdgeInfError } from "../src/util/errors.js";
import { readSafetensors } from "../src/loaders/safetensors.js";
import { expectedTensorShapes, parseHuggingFaceConfig } from "../src/loaders/huggingface.js";
import { checkConfigAgainstTensorNames } from "../src/loaders/config-check.js";
import { llama2cExpectedBytes, parseLlama2cHeader, readLlama2cConfig, readLlama2cModel } from "../src/loaders/llama2c.js";
import { loadRecipe } from "../src/training/recipe.js";
import { loadSuite, parseSuite } from "../src/eval/suite.js";
import { samplesForTask } from "../src/eval/samples.js";
import { charTokenizer } from "./fixtures/char-tokenizer.js";
import { readLongBenchJsonl } from "../src/eval/longbench.js";

const ROOT = resolve(__dirname, "..");
const SEED = 14; // issue 14; a failure prints the seed and path to replay it
const TIME_LIMIT_MS = 5_000;
/** Growth of the resident set allowed over one property (inputs are at most a few KiB). */
const MAX_RSS_GROWTH_BYTES = 512 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), "edgeinf-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Loads (true), or fails with one EdgeInfError line (false); anything else fails the property. */
function loadsOrOneLine(load: () => unknown): boolean {
  try {
    load();
    return true;
  } catch (e) {
    if (!(e instanceof EdgeInfError)) throw new Error(`not an EdgeInfError: ${e instanceof Error ? e.stack : String(e)}`);
    if (e.message.includes("\n")) throw new Error(`error of several lines: ${JSON.stringify(e.message)}`);
    return false;
  }
}

/** Runs the property; both outcomes must occur (a generator that only ever fails early would test nothing). */
function check<T>(arb: fc.Arbitrary<T>, load: (value: T) => unknown, numRuns: number): void {
  const before = process.memoryUsage().rss;
  const outcomes = { loaded: 0, refused: 0 };
  fc.assert(
    fc.property(arb, (value) => {
      if (loadsOrOneLine(() => load(value))) outcomes.loaded++;
      else outcomes.refused++;
    }),
    { seed: SEED, numRuns, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
  );
  expect(process.memoryUsage().rss - before).toBeLessThan(MAX_RSS_GROWTH_BYTES);
  expect(outcomes.loaded, JSON.stringify(outcomes)).toBeGreaterThan(0);
  expect(outcomes.refused, JSON.stringify(outcomes)).toBeGreaterThan(0);
}

/** Integers a file might claim: small, boundary, negative, huge. */
const claimedInt = fc.oneof(
  fc.integer({ min: 0, max: 64 }),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(2 ** 31 - 1, 2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER, -(2 ** 31)),
  fc.double({ noNaN: false }),
);
/** Any JSON value, or a claimed integer. */
const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), claimedInt);

/** `base` with some keys replaced by generated values or removed; nested one level. */
function mutated(base: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(base);
  const change = fc.tuple(fc.constantFrom(...keys, "__proto__", "extra"), fc.oneof(anyValue, fc.constant(undefined)));
  return fc.array(change, { maxLength: 4 }).map((changes) => {
    const out: Record<string, unknown> = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
    for (const [k, v] of changes) {
      if (v === undefined) delete out[k];
      else Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    return out;
  });
}

function file(name: string, data: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

describe("fuzz: every input loads or is one error line", () => {
  it("safetensors header and data (claimed header lengths, shapes and offsets up to 2^40)", () => {
    const entry = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom("F32", "F16", "BF16", "F64", "I64", "U8"), fc.string({ maxLength: 4 })),
        shape: fc.oneof(fc.array(claimedInt, { maxLength: 3 }), anyValue),
        data_offsets: fc.oneof(fc.tuple(claimedInt, claimedInt), fc.array(claimedInt, { maxLength: 3 }), anyValue),
      },
      { requiredKeys: [] },
    );
    const header = fc.dictionary(fc.oneof(fc.constantFrom("a", "b", "__metadata__", "__proto__"), fc.string({ maxLength: 3 })), fc.oneof(entry, anyValue), { maxKeys: 4 });
    const input = fc.record({
      header: fc.oneof(header.map((h) => JSON.stringify(h)), fc.string({ maxLength: 64 })),
      lengthClaim: fc.oneof(fc.constant(-1), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 0, max: 300 }).map(BigInt)),
      data: fc.uint8Array({ maxLength: 64 }),
      cut: fc.integer({ min: 0, max: 400 }),
    });
    check(
      input,
      ({ header: text, lengthClaim, data, cut }) => {
        const h = Buffer.from(text);
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(lengthClaim < 0n ? BigInt(h.length) : lengthClaim);
        const bytes = Buffer.concat([len, h, data]);
        return readSafetensors(file("x.safetensors", cut < 300 ? bytes : bytes.subarray(0, cut - 300)));
      },
      400,
    );
  });

  it("config.json (edge-lm's, mutated) and its check against the weight files' tensor names", () => {
    const edgeLm = resolve(ROOT, "../shared/models/edge-lm");
    const base = JSON.parse(readFileSync(join(edgeLm, "config.json"), "utf8")) as Record<string, unknown>;
    const names = Object.keys((JSON.parse(readFileSync(join(edgeLm, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> }).weight_map);
    check(
      mutated(base),
      (raw) => {
        const config = parseHuggingFaceConfig(raw, "config.json");
        checkConfigAgainstTensorNames(config, names, edgeLm);
        return expectedTensorShapes(config); // sized by the config only once the check passed
      },
      400,
    );
  });

  it("llama2.c header (dims up to 2^31, negative, zero) over a small body", () => {
    const small = fc.tuple(fc.constantFrom(4, 8), fc.constantFrom(4, 8), fc.constantFrom(1, 2), fc.constantFrom(1, 2), fc.constantFrom(1, 2), fc.constantFrom(4, -4, 8), fc.constantFrom(2, 4));
    const int32 = claimedInt.map((v) => (Number.isFinite(v) ? Math.trunc(v) | 0 : 0));
    const header = fc.oneof(
      small.map((t) => [...t] as number[]),
      fc.tuple(small, fc.integer({ min: 0, max: 6 }), int32).map(([t, i, v]) => Object.assign([...t], { [i]: v }) as number[]),
      fc.array(int32, { maxLength: 8 }),
    );
    const input = fc.record({ ints: header, body: fc.uint8Array({ maxLength: 256 }), exact: fc.boolean() });
    check(
      input,
      ({ ints, body, exact }) => {
        const head = Buffer.alloc(4 * ints.length);
        ints.forEach((v, i) => head.writeInt32LE(v, 4 * i));
        // exact: a body of the size the header implies (when small), so the load path runs too
        let want = -1;
        try {
          want = llama2cExpectedBytes(parseLlama2cHeader(head, "m.bin")) - head.length;
        } catch {
          // an invalid header: the reader must refuse it whatever follows
        }
        const p = file("m.bin", Buffer.concat([head, exact && want >= 0 && want < 1 << 16 ? new Uint8Array(want) : body]));
        readLlama2cConfig(p);
        return readLlama2cModel(p);
      },
      400,
    );
  });

  it("recipe YAML (recipes/quickstart.yaml, mutated at the top and one level down; raw text)", () => {
    const base = parseYaml(readFileSync(join(ROOT, "recipes/quickstart.yaml"), "utf8")) as Record<string, unknown>;
    const nested = fc.constantFrom("data", "edgeinfinite", "training").chain((section) =>
      mutated(base[section] as Record<string, unknown>).map((inner) => ({ ...base, [section]: inner })),
    );
    const text = fc.oneof(mutated(base).map((r) => toYaml(r)), nested.map((r) => toYaml(r)), fc.string({ maxLength: 80 }));
    check(text, (t) => loadRecipe(file("recipe.yaml", t)), 300);
  });

  it("suite YAML (eval/quick.yaml, mutated; raw text)", () => {
    const base = parseYaml(readFileSync(join(ROOT, "eval/quick.yaml"), "utf8")) as Record<string, unknown>;
    const text = fc.oneof(mutated(base).map((r) => toYaml(r)), fc.string({ maxLength: 80 }));
    check(text, (t) => loadSuite(file("suite.yaml", t), { baseDir: ROOT }), 300);
  });

  it("LongBench JSONL rows (valid rows mutated, any JSON, raw text)", () => {
    const base = { input: "q", context: "c", answers: ["a"], all_classes: null, length: 10, _id: "x", dataset: "hotpotqa", language: "en" };
    const line = fc.oneof(mutated(base).map((r) => JSON.stringify(r)), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ""), fc.string({ maxLength: 20 }));
    const text = fc.array(line, { maxLength: 5 }).map((lines) => lines.join("\n"));
    check(text, (t) => readLongBenchJsonl(file("rows.jsonl", t), { onError: "stop" }), 400);
  });

  it("LongBench v2 data.json and InfiniteBench rows as suite samples (valid records mutated, any JSON, raw text)", () => {
    const item = { _id: "i", difficulty: "easy", length: "short", question: "q?", choice_A: "a", choice_B: "b", choice_C: "c", choice_D: "d", answer: "A", context: "ctx" };
    const row = { id: 1, context: "c", input: "The largest number of func_1(2)", answer: ["a"], options: ["a", "b", "c", "d"] };
    const records = (base: Record<string, unknown>) => fc.array(fc.oneof(mutated(base), fc.jsonValue({ maxDepth: 2 })), { maxLength: 4 });
    const v2 = fc.oneof(records(item).map((items) => JSON.stringify(items)), records(item).map((items) => items.map((r) => JSON.stringify(r) ?? "").join("\n")), fc.string({ maxLength: 20 }));
    const ib = fc.tuple(fc.constantFrom("longbook_choice_eng", "code_run", "math_find", "code_debug", "passkey"), records(row).map((rows) => rows.map((r) => JSON.stringify(r) ?? "").join("\n")));
    const sources = { tokenizer: charTokenizer, corpus: () => [], newlineIds: [] };
    const suiteWith = (task: Record<string, unknown>) => parseSuite({ name: "f", backbone: "b", lengths: [64], tasks: [task], methods: [{ name: "full" }] }, "<fuzz>", dir);
    check(v2, (t) => {
      const s = suiteWith({ name: "v2", source: "longbench-v2", path: file("data.json", t) });
      return samplesForTask(s, s.tasks[0]!, sources);
    }, 200);
    check(ib, ([task, t]) => {
      const s = suiteWith({ name: task, source: "infinitebench", path: file("rows.jsonl", t) });
      return samplesForTask(s, s.tasks[0]!, sources);
    }, 200);
  });
});

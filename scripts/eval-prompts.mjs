// node scripts/eval-prompts.mjs SUITE OUT.json [--limit N] — the prompts a suite evaluates, as the harness builds
// them (src/eval/samples.ts: same seed, same records, same token ids), written as JSON for an outside implementation
// to run: {suite (without backbone, corpus and methods), limit, prompts: [{task, dataset, length, sampleId, depth,
// promptIds, answers, maxNewTokens, stopIds}]}. scripts/hf_greedy.py
// decodes them with Hugging Face transformers; test/hf-greedy.test.ts holds edgeinfinite's full-KV answers to its
// output. Needs a build (npm run build).
import { writeFileSync } from "node:fs";
import { loadSuite } from "../dist/src/eval/suite.js";
import { samplesForTask, suiteSampleSources } from "../dist/src/eval/samples.js";
import { loadBackbone } from "../dist/src/loaders/index.js";
import { EdgeInfError } from "../dist/src/util/errors.js";

// Bad input (a suite that does not parse, a missing backbone or corpus): one error line, as the CLI prints it.
process.on("uncaughtException", (e) => {
  if (!(e instanceof EdgeInfError)) throw e;
  console.error(`error: ${e.message}`);
  process.exit(1);
});

const args = process.argv.slice(2);
const at = args.indexOf("--limit");
const limit = at >= 0 ? Number(args.splice(at, 2)[1]) : undefined;
const [suitePath, outPath] = args;
if (suitePath === undefined || outPath === undefined || (limit !== undefined && !(limit >= 1))) {
  console.error("error: usage: node scripts/eval-prompts.mjs SUITE OUT.json [--limit N] (N ≥ 1)");
  process.exit(2);
}
const suite = loadSuite(suitePath);
const backbone = await loadBackbone(suite.backbone);
// The sources the harness reads (the same function), so these are the prompts a run evaluates.
const sources = suiteSampleSources(suite, backbone.tokenizer, { ...(limit !== undefined ? { limit } : {}), warn: (m) => console.error(`warning: ${m}`) });
const samples = suite.tasks.flatMap((t) => samplesForTask(suite, t, sources));
const rows = samples.map((s) => ({
  task: s.task, dataset: s.dataset, length: s.length, sampleId: s.sampleId, depth: s.depth,
  promptIds: s.promptIds, answers: s.answers, maxNewTokens: s.maxNewTokens, stopIds: s.stopIds,
}));
const { backbone: _b, corpus: _c, methods: _m, file: _f, ...rest } = suite;
writeFileSync(outPath, JSON.stringify({ suite: rest, limit: limit ?? null, prompts: rows }));
console.log(`${rows.length} prompts → ${outPath} (suite ${suite.name}, seed ${suite.seed})`);

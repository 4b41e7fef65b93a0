/**
 * RULER's question answering tasks (NVIDIA/RULER scripts/data/synthetic/qa.py, Apache-2.0): qa_1 on
 * SQuAD v2 dev, qa_2 on HotpotQA dev (both the user's files). A question's own documents plus
 * distractors (first the other paragraphs of its article, then any others) are shuffled with RULER's
 * seed and numbered "Document i:"; the answers are the dataset's answers.
 */
import { fail } from "../../util/errors.js";
import { permute, pyFormat, pySortedUnique, repeatToLength, RULER_RANDOM_SEED, type RulerRandom, type RulerRecord } from "./common.js";

/** scripts/data/synthetic/constants.py TASKS["qa"] template and answer prefix, verbatim. */
export const RULER_QA_TEMPLATE =
  "Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}";
export const RULER_QA_ANSWER_PREFIX = " Answer:";
const DOCUMENT_PROMPT = "Document {i}:\n{document}";

export interface RulerQa {
  query: string;
  outputs: string[];
  /** Indexes into `docs` of the documents that answer the question. */
  context: number[];
  /** SQuAD: the other paragraphs of the question's article, the first distractors. */
  moreContext: number[];
}

/** A dataset as qa.py reads it: the questions in file order and the distinct documents, sorted. */
export interface RulerQaData {
  qas: RulerQa[];
  docs: string[];
}

type Json = unknown;

function record(value: Json, what: string): Record<string, Json> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`RULER qa: ${what} is not an object`, "pass the dataset's dev JSON file unchanged");
  return value as Record<string, Json>;
}

function list(value: Json, what: string): Json[] {
  if (!Array.isArray(value)) fail(`RULER qa: ${what} is not a list`, "pass the dataset's dev JSON file unchanged");
  return value;
}

function text(value: Json, what: string): string {
  if (typeof value !== "string") fail(`RULER qa: ${what} is not a string`, "pass the dataset's dev JSON file unchanged");
  return value;
}

/** Documents → index in `sorted(set(docs))`, as qa.py's `total_docs_dict`. */
function indexDocs(docs: readonly string[]): { docs: string[]; index: Map<string, number> } {
  const sorted = pySortedUnique(docs);
  return { docs: sorted, index: new Map(sorted.map((doc, i) => [doc, i])) };
}

/**
 * qa.py `read_squad` on parsed SQuAD v2 JSON ({"data": [{"paragraphs": [{"context", "qas"}]}]}):
 * answerable questions only (`is_impossible` false), in file order.
 */
export function readRulerSquad(json: Json): RulerQaData {
  const articles = list(record(json, "the SQuAD file").data, "SQuAD's data").map((article, a) => list(record(article, `SQuAD article ${a}`).paragraphs, `SQuAD article ${a}'s paragraphs`).map((p, i) => record(p, `SQuAD article ${a} paragraph ${i}`)));
  const { docs, index } = indexDocs(articles.flat().map((p, i) => text(p.context, `SQuAD paragraph ${i}'s context`)));
  const qas: RulerQa[] = [];
  for (const paragraphs of articles) {
    const articleDocs = paragraphs.map((p) => index.get(p.context as string)!);
    for (const paragraph of paragraphs) {
      const own = index.get(paragraph.context as string)!;
      for (const qa of list(paragraph.qas, "SQuAD paragraph's qas").map((q) => record(q, "a SQuAD question"))) {
        if (typeof qa.is_impossible !== "boolean") fail("RULER qa_1: a SQuAD question without is_impossible", "pass SQuAD v2.0 dev (dev-v2.0.json), as RULER does");
        if (qa.is_impossible) continue;
        qas.push({
          query: text(qa.question, "a SQuAD question"),
          outputs: list(qa.answers, "a SQuAD question's answers").map((answer) => text(record(answer, "a SQuAD answer").text, "a SQuAD answer's text")),
          context: [own],
          moreContext: articleDocs.filter((i) => i !== own),
        });
      }
    }
  }
  return { qas, docs };
}

/** qa.py `read_hotpotqa` on parsed HotpotQA dev JSON ([{"question", "answer", "context": [[title, [sentences]]]}]): documents "title\nsentences joined". */
export function readRulerHotpotqa(json: Json): RulerQaData {
  const items = list(json, "the HotpotQA file").map((item, i) => record(item, `HotpotQA item ${i}`));
  const documentsOf = (item: Record<string, Json>): string[] =>
    list(item.context, "a HotpotQA item's context").map((pair) => {
      const [title, sentences] = list(pair, "a HotpotQA context entry");
      return `${text(title, "a HotpotQA title")}\n${list(sentences, "a HotpotQA paragraph").map((s) => text(s, "a HotpotQA sentence")).join("")}`;
    });
  const { docs, index } = indexDocs(items.flatMap(documentsOf));
  const qas = items.map((item) => ({
    query: text(item.question, "a HotpotQA question"),
    outputs: [text(item.answer, "a HotpotQA answer")],
    context: documentsOf(item).map((doc) => index.get(doc)!),
    moreContext: [],
  }));
  return { qas, docs };
}

/** generate_input_output's documents: the question's own, then distractors sampled as qa.py does (indexes into data.docs). */
function pickDocuments(qa: RulerQa, numDocs: number, numAll: number, random: RulerRandom): number[] {
  const own = qa.context;
  const more = qa.moreContext;
  if (numDocs - own.length > more.length) {
    const taken = new Set([...own, ...more]);
    const others = Array.from({ length: numAll }, (_, i) => i).filter((i) => !taken.has(i));
    return [...own, ...more, ...random.sample(others.length, Math.max(0, numDocs - own.length - more.length)).map((i) => others[i]!)];
  }
  if (numDocs < own.length) fail(`RULER qa: ${numDocs} documents for a question with ${own.length} of its own`, `use at least ${own.length} documents`);
  return [...own, ...random.sample(more.length, numDocs - own.length).map((i) => more[i]!)];
}

/**
 * One qa record: question `index` of `data` (RULER's sample index) with `numDocs` documents
 * (RULER fits the count to the context with the tokenizer; the builder takes it). With as many
 * documents as the dataset has or more, all of them are used, repeated, in sorted order before the
 * shuffle, as qa.py does.
 */
export function rulerQaRecord(data: RulerQaData, index: number, numDocs: number, random: RulerRandom): RulerRecord {
  const qa = data.qas[index];
  if (!qa) fail(`RULER qa: question ${index} of ${data.qas.length}`, `use an index below ${data.qas.length}`);
  const docs =
    numDocs < data.docs.length ? pickDocuments(qa, numDocs, data.docs.length, random).map((i) => data.docs[i]!) : repeatToLength(data.docs, numDocs);
  const shuffled = permute(docs, random.shufflePermutation(docs.length, RULER_RANDOM_SEED));
  const context = shuffled.map((document, i) => pyFormat(DOCUMENT_PROMPT, { i: i + 1, document })).join("\n\n");
  return { prompt: pyFormat(RULER_QA_TEMPLATE + RULER_QA_ANSWER_PREFIX, { context, query: qa.query }), answers: qa.outputs };
}

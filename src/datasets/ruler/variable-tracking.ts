/**
 * RULER's variable tracking task, vt (NVIDIA/RULER scripts/data/synthetic/variable_tracking.py,
 * Apache-2.0), noise haystack as synthetic.yaml configures it: chains "VAR A = 12345", "VAR B = VAR A "
 * ... inserted among noise sentences, preceded by RULER's one in-context example (a chain of 3-letter
 * names with value 12345, names and value then redrawn by `randomize_icl`). The question asks for all
 * names assigned the first chain's value; the answers are that chain's names.
 */
import { pySplitWhitespace } from "../../eval/metrics/python-str.js";
import { pyFormat, RULER_NOISE, type RulerRecord, type RulerTaskRandom } from "./common.js";

export interface RulerVtConfig {
  numChains: number;
  numHops: number;
  /**
   * Noise sentences of the in-context example. RULER fits that example to 500 tokens of the model's
   * tokenizer (binary search); the builder takes the count instead.
   */
  iclNumNoises: number;
}

/**
 * synthetic.yaml's vt (num_chains 1, num_hops 4). iclNumNoises is our estimate, not a RULER value:
 * RULER fits the example to 500 tokens of the model's tokenizer, and with a Llama-style tokenizer
 * (≈ 25 tokens a noise sentence, ≈ 135 for the template, chain and answer) that is about 15.
 */
export const RULER_VT_CONFIG: RulerVtConfig = { numChains: 1, numHops: 4, iclNumNoises: 15 };

/** scripts/data/synthetic/constants.py TASKS["variable_tracking"] template and answer prefix, verbatim. */
export const RULER_VT_TEMPLATE =
  "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: Find all variables that are assigned the value {query} in the text above.";
export const RULER_VT_ANSWER_PREFIX =
  " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assigned the value {query}, they are: ";
const UPPERCASE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/** The value of the in-context example's chain, which randomize_icl replaces. */
const ICL_VALUE = "12345";

interface Chains {
  names: string[][];
  lines: string[][];
}

/** generate_chains: names drawn (redrawn while any repeat), chunked per chain; the first line assigns a value. */
function generateChains(numChains: number, numHops: number, isIcl: boolean, random: RulerTaskRandom): Chains {
  const k = isIcl ? 3 : 5;
  const hops = isIcl ? Math.min(10, numHops) : numHops;
  const needed = (hops + 1) * numChains;
  let all = Array.from({ length: needed }, () => random.choices(UPPERCASE, k));
  while (new Set(all).size < needed) all.push(random.choices(UPPERCASE, k));
  // RULER chunks every drawn name, repeats included; a repeat leaves a short last chunk and RULER
  // raises IndexError there. Where it would, we chunk the distinct names instead.
  if (all.length % (hops + 1) !== 0) all = [...new Set(all)];
  const names: string[][] = [];
  const lines: string[][] = [];
  for (let i = 0; i < all.length; i += hops + 1) {
    const chainNames = all.slice(i, i + hops + 1);
    const chain = [`VAR ${chainNames[0]!} = ${isIcl ? ICL_VALUE : String(random.numpyRandint(10000, 99999))}`];
    for (let j = 0; j < hops; j++) chain.push(`VAR ${chainNames[j + 1]!} = VAR ${chainNames[j]!} `);
    names.push(chainNames);
    lines.push(chain);
  }
  return { names, lines };
}

/** generate_input_output on the noise haystack: the task text and the first chain's names. */
function vtInputOutput(numNoises: number, config: RulerVtConfig, isIcl: boolean, random: RulerTaskRandom): { text: string; answers: string[] } {
  const chains = generateChains(config.numChains, config.numHops, isIcl, random);
  const value = chains.lines[0]![0]!.split("=").pop()!.trim();
  const sentences: string[] = Array.from({ length: numNoises }, () => RULER_NOISE);
  for (const chain of chains.lines) {
    // Sampled over the sentences so far (earlier chains included), each line shifted past the ones before it.
    const positions = random.sample(sentences.length, chain.length).sort((a, b) => a - b);
    positions.forEach((position, j) => sentences.splice(position + j, 0, chain[j]!));
  }
  const context = sentences.join("\n").split(". \n").join(".\n");
  const text = pyFormat(RULER_VT_TEMPLATE + RULER_VT_ANSWER_PREFIX, { context, query: value, num_v: config.numHops + 1 });
  return { text, answers: chains.names[0]! };
}

/** randomize_icl: the example's answer names (its last num_hops + 1 words) and its value 12345 redrawn, every occurrence replaced. */
function randomizeIcl(example: string, numHops: number, random: RulerTaskRandom): string {
  let text = example;
  for (const name of pySplitWhitespace(example).slice(-(numHops + 1))) {
    text = text.split(name).join(random.choices(UPPERCASE, name.length));
  }
  return text.split(ICL_VALUE).join(String(random.numpyRandint(10000, 99999)));
}

/**
 * The in-context example's noise count as RULER's main() fits it: the most noise sentences (at least 5, RULER's
 * `incremental`) whose ICL text — generate_input_output(n, is_icl=True), no answers appended — stays within 500
 * tokens of the model's tokenizer (`countTokens`, no BOS, as RULER's text_to_tokens). Binary search between 5 and
 * 3× the estimate from 5 sentences, as RULER does; the draws come from `random` (any seeded stream).
 */
export function rulerVtIclNumNoises(countTokens: (text: string) => number, random: RulerTaskRandom, config: RulerVtConfig = RULER_VT_CONFIG, maxTokens = 500): number {
  const incremental = 5;
  const tokensAt = (n: number): number => countTokens(vtInputOutput(n, config, true, random).text);
  const perSentence = tokensAt(incremental) / incremental;
  let lower = incremental;
  let upper = Math.max(Math.floor((maxTokens / perSentence) * 3), incremental * 2);
  let best: number | null = null;
  while (lower <= upper) {
    const mid = (lower + upper) >> 1;
    if (tokensAt(mid) <= maxTokens) {
      best = mid;
      lower = mid + 1;
    } else upper = mid - 1;
  }
  return best ?? incremental;
}

/**
 * One vt record with `numNoises` noise sentences: RULER's in-context example (built first, as
 * RULER's main() builds it before the samples; RULER builds it once per dataset, we per record)
 * with its answers appended, the task text, then the example's names and value redrawn, in RULER's
 * draw order. The prompt is RULER's `input` + `answer_prefix` (base model template).
 */
export function rulerVtRecord(numNoises: number, random: RulerTaskRandom, config: RulerVtConfig = RULER_VT_CONFIG): RulerRecord {
  const icl = vtInputOutput(config.iclNumNoises, config, true, random);
  const example = `${icl.text} ${icl.answers.join(" ")}\n`;
  const task = vtInputOutput(numNoises, config, false, random);
  return { prompt: `${randomizeIcl(example, config.numHops, random)}\n${task.text}`, answers: task.answers };
}

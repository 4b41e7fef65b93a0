/** What the rest of edgeinfinite needs from a tokenizer (llama2.c or Hugging Face tokenizer.json). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Whether `encode(text, { bos: true })` starts with BOS (false for Qwen-style tokenizers); absent = true. */
  readonly addsBos?: boolean;
  /** Every id that ends generation (Llama 3 and Qwen list several); absent = [eosId]. */
  readonly eosIds?: readonly number[];
  /**
   * Token ids of `text`; with `bos` a document start as the model's tokenizer makes it: the BOS id exactly once,
   * or nothing for families whose tokenizer adds no BOS (Qwen, Phi-3, SmolLM3).
   */
  encode(text: string, options?: { bos?: boolean }): number[];
  /** Text of `ids`; special tokens (BOS/EOS/pad) are skipped. */
  decode(ids: readonly number[]): string;
}

/** Every id that ends generation: the tokenizer's EOS ids, then any the model config adds (deduplicated). */
export function endOfTextIds(tokenizer: Tokenizer, modelEosIds: readonly number[] = []): number[] {
  return [...new Set([...(tokenizer.eosIds ?? [tokenizer.eosId]), ...modelEosIds])];
}

/** What the rest of edgeinfinite needs from a tokenizer (llama2.c or Hugging Face tokenizer.json). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of `text`; with `bos` the BOS id is prepended exactly once. */
  encode(text: string, options?: { bos?: boolean }): number[];
  /** Text of `ids`; special tokens (BOS/EOS/pad) are skipped. */
  decode(ids: readonly number[]): string;
}

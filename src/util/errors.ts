/**
 * User-facing errors: one line that names the thing that is wrong and how to fix it.
 * The CLI prints `error: <message>` for these (no stack trace) and exits with code 1.
 */
export class EdgeInfError extends Error {
  readonly hint: string | undefined;
  constructor(problem: string, hint?: string) {
    super(hint ? `${problem} — ${hint}` : problem);
    this.name = "EdgeInfError";
    this.hint = hint;
  }
}

export function fail(problem: string, hint?: string): never {
  throw new EdgeInfError(problem, hint);
}

export function assertConfig(condition: boolean, problem: string, hint?: string): asserts condition {
  if (!condition) fail(problem, hint);
}

/**
 * A failure that is a limit of the machine, not a bug, as one line with the fix; null for anything else.
 * tfjs-backend-wasm's heap is wasm32 memory, at most 4 GiB: when it cannot grow, the next kernel writes out of
 * bounds and wasm throws "memory access out of bounds" (from a worker thread it arrives as a plain Error with the
 * same message).
 */
export function resourceError(e: unknown): EdgeInfError | null {
  if (!(e instanceof Error)) return null;
  // "Aborted()": the module aborted, in tfjs-backend-wasm an allocation past the cap (builds without assertions).
  if (/memory access out of bounds|Cannot enlarge memory|Aborted\(|^wasm heap full/.test(e.message))
    return new EdgeInfError(
      `the wasm backend ran out of memory ("${e.message.split("\n")[0]!.trim()}": its heap holds at most 4 GiB)`,
      "give one forward less to hold (data.sequenceLength, training.batchSize, a suite's lengths) or use --backend cpu or tensorflow",
    );
  return null;
}

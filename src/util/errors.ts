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

/**
 * A progress line for long work: `label [#####-----] 12/60 20% | 1.3 it/s | ETA 37s | extra`.
 * On a TTY it redraws in place; otherwise it prints a line every `everySeconds` so logs stay readable.
 */
export class Progress {
  private readonly start = performance.now();
  private lastPrint = 0;
  private readonly tty: boolean;

  constructor(
    readonly label: string,
    readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly everySeconds = 10,
    private done = 0,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(done: number, extra = ""): void {
    this.done = done;
    const now = performance.now();
    if (!this.tty && done < this.total && now - this.lastPrint < this.everySeconds * 1000) return;
    this.lastPrint = now;
    this.stream.write((this.tty ? "\r" : "") + this.line(extra) + (this.tty ? "" : "\n"));
  }

  line(extra = ""): string {
    const elapsed = (performance.now() - this.start) / 1000;
    const frac = this.total > 0 ? this.done / this.total : 1;
    const width = 20;
    const filled = Math.round(frac * width);
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : NaN;
    const fmt = (s: number) => (Number.isFinite(s) ? (s >= 90 ? `${Math.round(s / 60)}m` : `${Math.round(s)}s`) : "?");
    return `${this.label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${this.done}/${this.total} ${Math.round(frac * 100)}% | ${rate.toFixed(2)} it/s | ETA ${fmt(eta)}${extra ? " | " + extra : ""}`;
  }

  finish(extra = ""): void {
    this.stream.write((this.tty ? "\r" : "") + this.line(extra) + "\n");
  }
}

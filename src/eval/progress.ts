/**
 * Progress over the samples of a run: a cli-progress bar with rate and ETA on a terminal, one plain line per
 * sample otherwise (logs, CI), or nothing. Always on stderr so stdout stays clean for tables.
 */
import cliProgress from "cli-progress";

export type ProgressMode = "auto" | "bar" | "lines" | "none";

export interface ProgressReporter {
  /** A sample finished; `label` says which. */
  tick(label: string): void;
  stop(): void;
}

/** Samples per second and seconds left, from the samples run in this process (resumed ones excluded). */
export function rateAndEta(doneHere: number, elapsedMs: number, remaining: number): { rate: number; etaSeconds: number } {
  const rate = elapsedMs > 0 ? (doneHere * 1000) / elapsedMs : 0;
  return { rate, etaSeconds: rate > 0 ? remaining / rate : Infinity };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** `total` samples, of which `alreadyDone` were finished by an earlier run; `name` and `unit` label the lines. */
export function progressReporter(
  mode: ProgressMode,
  total: number,
  alreadyDone: number,
  stream: NodeJS.WriteStream = process.stderr,
  { name, unit } = { name: "eval", unit: "samples" },
): ProgressReporter {
  const resolved = mode === "auto" ? (stream.isTTY ? "bar" : "lines") : mode;
  const start = performance.now();
  let done = alreadyDone;
  const stats = () => rateAndEta(done - alreadyDone, performance.now() - start, total - done);
  if (resolved === "none") {
    return { tick: () => void done++, stop: () => {} };
  }
  if (resolved === "lines") {
    return {
      tick: (label) => {
        done++;
        const { rate, etaSeconds } = stats();
        stream.write(`${name} ${done}/${total} ${label} | ${rate.toFixed(2)} ${unit}/s | eta ${formatSeconds(etaSeconds)}\n`);
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { stream, format: `${name} [{bar}] {value}/{total} | {rate} ${unit}/s | eta {etaText} | {label}`, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, alreadyDone, { rate: "-", etaText: "?", label: "" });
  return {
    tick: (label) => {
      done++;
      const { rate, etaSeconds } = stats();
      bar.update(done, { rate: rate.toFixed(2), etaText: formatSeconds(etaSeconds), label });
    },
    stop: () => bar.stop(),
  };
}

import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeTables } from "../src/eval/tables.js";
import type { SampleRow } from "../src/eval/samples-log.js";
import { countPixels, decodePng, svgSize } from "./fixtures/png.js";

const repo = resolve(__dirname, "..");
const notebook = resolve(repo, "notebooks/compare-methods.ts");

/** A hand-made finished run: two methods, two lengths, two samples each, known scores. */
function row(method: string, length: number, index: number, score: number): SampleRow {
  return {
    task: "passkey",
    dataset: "passkey",
    source: "synthetic",
    length,
    sampleId: `passkey_${length}_1_${index}_d${index === 0 ? 0.1 : 0.9}`,
    depth: index === 0 ? 0.1 : 0.9,
    method,
    methodName: method,
    promptTokens: length,
    truncated: false,
    outputIds: [1, 2, 3],
    prediction: score === 1 ? " 123." : " no.",
    answers: ["123"],
    score,
    ttftMs: method === "full" ? 20 : 10,
    decodeTokensPerSecond: 100,
    prefillTokensPerSecond: 1000,
    newTokens: 3,
    kvBytesAfterPrefill: method === "full" ? length * 1000 : 128 * 1000,
    peakKvBytes: method === "full" ? (length + 3) * 1000 : 128 * 1000,
    kvBytesFull: length * 1000,
    maxRssKb: 100_000,
    rssBytes: 90_000_000,
    leakedTensors: 0,
    repeats: 1,
    backend: "cpu",
    taskHash: "t",
    methodHash: method,
    finishedAt: "2025-01-01T00:00:00.000Z",
  };
}

describe("notebooks/compare-methods.ts", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "edgeinf-notebook-"));
    // full: 1,1,1,0 → 75.00; streaming: 1,0,0,0 → 25.00
    const rows = [
      row("full", 256, 0, 1), row("full", 256, 1, 1), row("full", 512, 0, 1), row("full", 512, 1, 0),
      row("streaming", 256, 0, 1), row("streaming", 256, 1, 0), row("streaming", 512, 0, 0), row("streaming", 512, 1, 0),
    ];
    writeTables(dir, rows, { suite: "tiny", order: { tasks: ["passkey"], methods: ["full", "streaming"] } });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs headless on a run dir, prints the per-method comparison and writes its plot", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", notebook, dir], { cwd: repo, encoding: "utf8", timeout: 60_000 });
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    // Per-method lines: "|full|4|75.00|..." — means worked out by hand above; KV ratio of streaming = mean(128/256, 128/512) = 0.375.
    const lines = r.stdout.split("\n");
    const full = lines.find((l) => l.startsWith("|full|"));
    const streaming = lines.find((l) => l.startsWith("|streaming|"));
    expect(full?.split("|").slice(1, 5)).toEqual(["full", "4", "75.00", "1.000"]);
    expect(streaming?.split("|").slice(1, 5)).toEqual(["streaming", "4", "25.00", "0.375"]);
    // Depth table: full finds the 0.1-depth needle at both lengths (100) and the 0.9 one at one of two (50).
    expect(lines.some((l) => l.startsWith("|full|") && l.includes("|100|50|"))).toBe(true);
    const plot = join(dir, "notebook_score_vs_length.svg");
    expect(existsSync(plot)).toBe(true);
    const svg = readFileSync(plot, "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("streaming");
    // And its PNG: twice the SVG's size, with the two method lines and text drawn.
    const png = join(dir, "notebook_score_vs_length.png");
    expect(r.stdout).toContain(png);
    const img = decodePng(readFileSync(png));
    const size = svgSize(svg);
    expect([img.width, img.height]).toEqual([2 * size.width, 2 * size.height]);
    const pixels = countPixels(img);
    expect(pixels.coloured).toBeGreaterThan(200);
    expect(pixels.dark).toBeGreaterThan(1000);
  });

  it("fails with a message naming results.json when the run dir has none", () => {
    const empty = mkdtempSync(join(tmpdir(), "edgeinf-notebook-empty-"));
    const r = spawnSync(process.execPath, ["--import", "tsx", notebook, empty], { cwd: repo, encoding: "utf8", timeout: 60_000 });
    rmSync(empty, { recursive: true, force: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("results.json does not exist");
  });
});

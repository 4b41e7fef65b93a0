/**
 * Needle-in-a-haystack sweep: the length × depth grid of mean scores (checked by hand) and its
 * heat map, rendered to SVG by `edgeinf report` when the run is a sweep.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isNeedleSweep, needleGrid, needleHeatmapSpec, renderSvg, report } from "../src/eval/report.js";
import type { SampleRow } from "../src/eval/samples-log.js";

const work = mkdtempSync(join(tmpdir(), "edgeinf-niah-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function row(method: string, length: number, depth: number | null, score: number, sampleId: string): SampleRow {
  return { task: "passkey", dataset: "passkey", source: "synthetic", length, sampleId, depth, method, methodName: method, promptTokens: length, truncated: false, outputIds: [], prediction: "", answers: ["1"], score } as unknown as SampleRow;
}

const lengths = [256, 512, 1024];
const depths = [0.1, 0.5, 0.9];
// full: 1 everywhere; snapkv: 1 at depth 0.9 only, and one of two samples right at (512, 0.5).
const samples: SampleRow[] = [];
for (const length of lengths) {
  for (const depth of depths) {
    for (const k of [0, 1]) {
      samples.push(row("full", length, depth, 1, `s${k}_d${depth}`));
      const snap = depth === 0.9 ? 1 : length === 512 && depth === 0.5 && k === 0 ? 1 : 0;
      samples.push(row("snapkv", length, depth, snap, `s${k}_d${depth}`));
    }
  }
}

describe("needle grid and heat map", () => {
  it("averages each method × length × depth cell (100 × mean, n samples)", () => {
    const grid = needleGrid([...samples, row("full", 256, null, 0, "no-depth")]);
    expect(grid).toHaveLength(2 * 3 * 3);
    const cell = (method: string, length: number, depth: number) => grid.find((c) => c.method === method && c.length === length && c.depth === depth);
    expect(cell("full", 1024, 0.1)).toEqual({ method: "full", task: "passkey", length: 1024, depth: 0.1, score: 100, n: 2 });
    expect(cell("snapkv", 512, 0.5)!.score).toBe(50);
    expect(cell("snapkv", 256, 0.1)!.score).toBe(0);
    expect(isNeedleSweep(grid)).toBe(true);
    expect(isNeedleSweep(grid.filter((c) => c.length !== 1024))).toBe(false); // 2 lengths: no heat map
  });

  it("renders one rect and one label per cell, per method panel", async () => {
    const svg = await renderSvg(needleHeatmapSpec(needleGrid(samples), "t"));
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("needle depth (%)");
    for (const m of ["full", "snapkv"]) expect(svg).toContain(m);
    expect((svg.match(/aria-roledescription="rect mark"/g) ?? []).length).toBe(18);
    expect((svg.match(/aria-roledescription="text mark"/g) ?? []).length).toBe(18);
  });

  it("edgeinf report writes needle_heatmap for a sweep", async () => {
    writeFileSync(join(work, "results.json"), JSON.stringify({ suite: "niah", generatedAt: "x", aggregates: [], samples }));
    const r = await report(work, { print: () => {}, warn: () => {}, rasteriser: async () => () => new Uint8Array([1]) });
    expect(r.files.map((f) => f.split("/").pop())).toContain("needle_heatmap.svg");
    expect(readFileSync(join(work, "needle_heatmap.svg"), "utf8")).toContain("needle in a haystack");
  });
});

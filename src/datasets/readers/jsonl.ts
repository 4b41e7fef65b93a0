import { readFileSync, existsSync } from "node:fs";
import { fail } from "../../util/errors.js";
import { type ColumnMapping, recordText } from "../column-mapping.js";

/**
 * Texts of a JSONL file (one JSON object per line; blank lines skipped) under a column mapping.
 * Errors name FILE:LINE.
 */
export function readJsonl(path: string, mapping: ColumnMapping): string[] {
  if (!existsSync(path)) fail(`JSONL file ${path} does not exist`, "check the path");
  const lines = readFileSync(path, "utf8").split("\n");
  const texts: string[] = [];
  lines.forEach((rawLine, index) => {
    const line = rawLine.replace(/\r$/, "");
    if (line.trim() === "") return;
    const where = `${path}:${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      fail(`${where}: not valid JSON (${(e as Error).message})`, "fix or remove that line");
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      fail(`${where}: expected a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`, "write one object per line");
    }
    texts.push(recordText(value as Record<string, unknown>, mapping, where));
  });
  return texts;
}

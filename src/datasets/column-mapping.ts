import { readFileSync, existsSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { fail } from "../util/errors.js";

/**
 * Which record fields make up a document's text. Several fields are joined with a blank line,
 * so `{ text: ["title", "body"] }` gives "title\n\nbody".
 */
export interface ColumnMapping {
  text: string | readonly string[];
}

export const COLUMN_JOINER = "\n\n";

const columnMappingSchema = z.object({
  text: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
});

/** The text columns of a mapping, as a list. */
export function textColumns(mapping: ColumnMapping): readonly string[] {
  return typeof mapping.text === "string" ? [mapping.text] : mapping.text;
}

/** Validate a mapping that came from user input (CLI flag, YAML/JSON file). */
export function parseColumnMapping(value: unknown, where: string): ColumnMapping {
  const parsed = columnMappingSchema.safeParse(value);
  if (!parsed.success) {
    fail(
      `${where}: column mapping must be { text: "field" } or { text: ["field", ...] }`,
      `fix the mapping, e.g. {"text": ["title", "body"]}`,
    );
  }
  return parsed.data;
}

/** Read a column mapping from a .json or .yaml file. */
export function readColumnMapping(path: string): ColumnMapping {
  if (!existsSync(path)) fail(`column mapping file ${path} does not exist`, "check the path");
  const raw = readFileSync(path, "utf8");
  let value: unknown;
  try {
    value = path.endsWith(".json") ? JSON.parse(raw) : parseYaml(raw);
  } catch (e) {
    fail(`${path}: cannot parse column mapping (${(e as Error).message.split("\n")[0]})`, "write valid JSON or YAML");
  }
  return parseColumnMapping(value, path);
}

/** Check once, against the columns a source actually has, that every mapped column exists. */
export function checkColumnsExist(mapping: ColumnMapping, available: readonly string[], where: string): void {
  for (const column of textColumns(mapping)) {
    if (!available.includes(column)) {
      fail(
        `${where}: unknown column "${column}" (columns: ${available.join(", ") || "none"})`,
        "fix the column mapping",
      );
    }
  }
}

/** The text of one record under `mapping`; `where` is FILE:LINE for error messages. */
export function recordText(record: Record<string, unknown>, mapping: ColumnMapping, where: string): string {
  const parts: string[] = [];
  for (const column of textColumns(mapping)) {
    if (!Object.prototype.hasOwnProperty.call(record, column)) {
      fail(
        `${where}: unknown column "${column}" (columns: ${Object.keys(record).join(", ") || "none"})`,
        "fix the column mapping",
      );
    }
    const value = record[column];
    if (value === null || value === undefined) parts.push("");
    else if (typeof value === "string") parts.push(value);
    else if (typeof value === "number" || typeof value === "boolean") parts.push(String(value));
    else fail(`${where}: column "${column}" is a ${Array.isArray(value) ? "list" : "object"}, not text`, "map a text column");
  }
  return parts.join(COLUMN_JOINER);
}

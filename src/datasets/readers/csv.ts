import { readFileSync, existsSync } from "node:fs";
import { parse } from "csv-parse/sync";
import { EdgeInfError, fail } from "../../util/errors.js";
import { type ColumnMapping, checkColumnsExist, recordText } from "../column-mapping.js";

export interface CsvOptions {
  /** Field delimiter; "," unless given (use "\t" for TSV). */
  delimiter?: string;
}

interface CsvRow {
  record: Record<string, string>;
  info: { lines: number };
}

/** Texts of a CSV file with a header row, under a column mapping. Errors name FILE:LINE. */
export function readCsv(path: string, mapping: ColumnMapping, options: CsvOptions = {}): string[] {
  if (!existsSync(path)) fail(`CSV file ${path} does not exist`, "check the path");
  const content = readFileSync(path);
  let rows: CsvRow[];
  try {
    rows = parse(content, {
      // Validate the header before any row, so a wrong mapping fails even on a header-only file.
      columns: (header: string[]) => {
        checkColumnsExist(mapping, header, path);
        return header;
      },
      info: true,
      bom: true,
      skip_empty_lines: true,
      delimiter: options.delimiter ?? ",",
    }) as unknown as CsvRow[];
  } catch (e) {
    if (e instanceof EdgeInfError) throw e;
    const err = e as Error & { lines?: unknown };
    const line = typeof err.lines === "number" ? `:${err.lines}` : "";
    fail(`${path}${line}: ${err.message}`, "fix the CSV (quotes, column count) at that line");
  }
  return rows.map((row) => recordText(row.record, mapping, `${path}:${row.info.lines}`));
}

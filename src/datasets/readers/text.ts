import { existsSync, statSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fail } from "../../util/errors.js";
import { readTextFile as readBoundedText } from "../../util/text-file.js";

export interface TextDocument {
  path: string;
  text: string;
}

// Gutenberg marker lines vary: "*** START OF THIS PROJECT GUTENBERG EBOOK X ***", "***START OF THE PROJECT ...***".
const GUTENBERG_START = /^\s*\*{3}\s*START OF (THIS|THE) PROJECT GUTENBERG[^\n]*$/im;
const GUTENBERG_END = /^\s*\*{3}\s*END OF (THIS|THE) PROJECT GUTENBERG[^\n]*$/im;

/** CRLF/CR line endings to LF, so sentence and paragraph splitting sees one convention. */
export function normalizeNewlines(text: string): string {
  return text.replace(/\r\n?/g, "\n");
}

// Inside the markers many files still open with a credits paragraph and close with an "End of ..." line.
const CREDITS_PARAGRAPH = /^(Produced by|Transcribed from|E-text prepared by)[^]*?(\n\s*\n|$)/i;
const END_OF_LINE = /\n[^\n]*End of (the )?Project Gutenberg[^\n]*$/i;

/**
 * The body of a Project Gutenberg file: the text between the `*** START OF ...` and `*** END OF ...`
 * lines, without the credits paragraph ("Produced by ...") and the closing "End of the Project Gutenberg
 * EBook ..." line, trimmed. Text without the markers is returned unchanged (apart from newline normalisation).
 */
export function stripGutenberg(text: string): string {
  const normalized = normalizeNewlines(text);
  const start = GUTENBERG_START.exec(normalized);
  if (!start) return normalized;
  const bodyStart = start.index + start[0].length;
  const rest = normalized.slice(bodyStart);
  const end = GUTENBERG_END.exec(rest);
  const body = (end ? rest.slice(0, end.index) : rest).trim();
  return ("\n" + body).replace(END_OF_LINE, "").trim().replace(CREDITS_PARAGRAPH, "").trim();
}

/** One text file, Gutenberg boilerplate stripped unless `stripBoilerplate` is false. */
export function readTextFile(path: string, options: { stripBoilerplate?: boolean } = {}): string {
  if (!existsSync(path)) fail(`text file ${path} does not exist`, "check the path");
  if (statSync(path).isDirectory()) fail(`${path} is a directory, not a text file`, "use readTextSource for folders");
  const raw = readBoundedText(path, "text file"); // a binary file (NUL bytes) or one past 256 MiB: one error line
  return options.stripBoilerplate === false ? normalizeNewlines(raw) : stripGutenberg(raw);
}

/** The `.txt` files of a folder (not recursive), sorted by name so corpus order is reproducible. */
export function listTextFiles(dir: string): string[] {
  if (!existsSync(dir)) fail(`corpus folder ${dir} does not exist`, "check the path");
  const files = readdirSync(dir)
    .filter((name) => name.toLowerCase().endsWith(".txt"))
    .sort()
    .map((name) => join(dir, name));
  if (files.length === 0) fail(`corpus folder ${dir} has no .txt files`, "point at a folder of .txt files or at one file");
  return files;
}

/** A single text file, or every `.txt` file in a folder. */
export function readTextSource(pathOrDir: string, options: { stripBoilerplate?: boolean } = {}): TextDocument[] {
  if (!existsSync(pathOrDir)) fail(`text source ${pathOrDir} does not exist`, "check the path");
  const files = statSync(pathOrDir).isDirectory() ? listTextFiles(pathOrDir) : [pathOrDir];
  return files.map((path) => ({ path, text: readTextFile(path, options) }));
}

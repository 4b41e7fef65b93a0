/**
 * The exact strings the edge-lm test backbone was trained on (../shared/models/edge-lm/README.md,
 * "Synthetic retrieval formats"). Every piece starts with a space so pieces concatenate into prose.
 * Variable tracking is not in that list; its format (RULER-style) is defined here too.
 */

export const INTRO =
  " There is an important piece of information hidden inside a lot of irrelevant text." +
  " Find it and memorize it. I will quiz you about the important information there.";

export const passkeyNeedle = (n: string): string => ` The pass key is ${n}. Remember it. ${n} is the pass key.`;
export const PASSKEY_QUERY = "\n\nWhat is the pass key? The pass key is";

export const kvNeedle = (key: string, value: string): string => ` The value of key '${key}' is ${value}.`;
export const kvQuery = (key: string): string => `\n\nWhat is the value of key '${key}'? The value of key '${key}' is`;

export const magicNeedle = (name: string, value: string): string => ` The special magic number for ${name} is ${value}.`;
export const magicQuery = (name: string): string =>
  `\n\nWhat is the special magic number for ${name}? The special magic number for ${name} is`;

/** Every trained answer is the value after a space, closed by a period. */
export const answerCompletion = (value: string): string => ` ${value}.`;

// Variable tracking (not trained into edge-lm): first a value assignment, then copies along a chain.
export const variableValueNeedle = (name: string, value: string): string => ` VAR ${name} = ${value}.`;
export const variableCopyNeedle = (name: string, from: string): string => ` VAR ${name} = VAR ${from}.`;
export const variableQuery = (value: string): string =>
  `\n\nWhich variables are assigned the value ${value}? The variables assigned the value ${value} are`;
/** Names in chain order, space separated, closed by a period: " QXRTB HJKLA MMNOP.". */
export const variableCompletion = (names: readonly string[]): string => ` ${names.join(" ")}.`;

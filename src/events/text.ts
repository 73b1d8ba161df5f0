// Text PostgreSQL cannot store: U+0000 (refused by text and jsonb alike) and
// unpaired UTF-16 surrogates (refused by jsonb; turned into U+FFFD by text). An
// event carrying either would make the ledger refuse the insert of its whole job.

// A NUL, a high surrogate not followed by a low one, or a low one not preceded by a high one.
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is what this looks for.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** True when PostgreSQL can store the string as text and inside jsonb. */
export function isStorableText(s: string): boolean {
  return s.search(UNSTORABLE) === -1; // search() ignores the g flag's lastIndex
}

/** The string with each unstorable character written as a \uXXXX escape (for reasons, logs and storage). */
export function escapeUnstorable(s: string): string {
  return s.replace(UNSTORABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

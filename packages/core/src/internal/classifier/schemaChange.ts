/** @internal */
import { EOF, ERROR, LPAREN, Scanner, SEMI, text, WORD } from "./lexer.js"

// Statements after which a replica that has not replayed them may answer a
// read with "relation does not exist": DDL, privileges, comments, and DO
// blocks (whose dollar-quoted bodies the lexer does not look into).
/** @internal */
export const schemaKeywords: ReadonlySet<string> = new Set([
  "create",
  "alter",
  "drop",
  "comment",
  "grant",
  "revoke",
  "security",
  "import",
  "do"
])

/**
 * Whether a write may change the schema: a statement of the text (the first,
 * or one after a `;`) that starts with a schema keyword, outside literals and
 * comments. `INSERT … ON CONFLICT DO NOTHING` and a column named `comment` are
 * not schema changes: only a statement's first word counts.
 * @internal
 */
export const isSchemaChange = (sql: string): boolean => {
  const scanner = new Scanner(sql)
  let atStart = true
  for (;;) {
    const kind = scanner.next()
    if (kind === EOF || kind === ERROR) return false
    if (kind === SEMI) {
      atStart = true
      continue
    }
    if (kind === LPAREN && atStart) continue
    if (atStart && kind === WORD && schemaKeywords.has(text(scanner))) return true
    atStart = false
  }
}

/** @internal */
import type * as Classifier from "../../Classifier.js"
import type { Keyword, Token } from "./lexer.js"
import {
  COMMA,
  EOF,
  ERROR,
  LPAREN,
  NUMBER,
  QUOTED_IDENT,
  RPAREN,
  Scanner,
  SEMI,
  STRING,
  text,
  UNICODE_IDENT,
  WORD,
  wordAt
} from "./lexer.js"
import { schemaKeywords } from "./schemaChange.js"
import { isSideEffectFunction } from "./sideEffects.js"

// Classification: one pass over the tokens, a verdict and its reason.

const read = (reason: Classifier.Reason, detail?: string): Classifier.Classification =>
  detail === undefined ? { intent: "read", reason } : { intent: "read", reason, detail }

const write = (reason: Classifier.Reason, detail?: string): Classifier.Classification =>
  detail === undefined ? { intent: "write", reason } : { intent: "write", reason, detail }

const unparseable = (detail: string): Classifier.Classification => write("unparseable", detail)

const unbalanced = unparseable("unbalanced parentheses")

const identifierName = (sql: string, kind: Token, start: number, end: number): string =>
  kind === WORD
    ? sql.slice(start, end).toLowerCase()
    : sql.slice(start + 1, end - 1).replaceAll("\"\"", "\"").toLowerCase()

/** What the body scan looks for: everything, COPY direction too, or only the statement's shape. */
type Mode = "read" | "copy" | "shape"

/** @internal */
export const classifyText = (sql: string, names: ReadonlySet<string>): Classifier.Classification =>
  statement(new Scanner(sql), names)

/** Skips leading opening parentheses: how many, and the token after them. */
const openParens = (scanner: Scanner): { readonly depth: number; readonly kind: Token } => {
  let depth = 0
  let kind = scanner.next()
  while (kind === LPAREN) {
    depth++
    kind = scanner.next()
  }
  return { depth, kind }
}

const statement = (scanner: Scanner, names: ReadonlySet<string>): Classifier.Classification => {
  const { depth, kind } = openParens(scanner)
  switch (kind) {
    case EOF:
      return depth === 0 ? write("empty") : unbalanced
    case ERROR:
      return unparseable(scanner.error)
    case SEMI:
      return depth === 0 ? afterSemicolon(scanner) ?? write("empty") : unbalanced
    case WORD:
      break
    default:
      return unparseable("statement does not start with a keyword")
  }
  const keyword = wordAt(scanner)
  switch (keyword) {
    case "select":
    case "with":
    case "values":
    case "table":
      return body(scanner, names, depth, "read") ?? read("read-statement", keyword)
    case "show":
    case "explain":
    case "copy":
      if (depth > 0) return unparseable(`parenthesised ${keyword}`)
      if (keyword === "show") return body(scanner, names, 0, "read") ?? read("read-statement", keyword)
      if (keyword === "explain") return explainStatement(scanner, names)
      return body(scanner, names, 0, "copy") ?? read("copy-to-stdout")
    default: {
      const word = text(scanner)
      return write(schemaKeywords.has(word) ? "schema-change" : "not-a-read", word)
    }
  }
}

// After a `;` only more `;` may follow.
const afterSemicolon = (scanner: Scanner): Classifier.Classification | undefined => {
  for (;;) {
    switch (scanner.next()) {
      case SEMI:
        continue
      case EOF:
        return undefined
      case ERROR:
        return unparseable(scanner.error)
      default:
        return write("multiple-statements")
    }
  }
}

/** Scans the rest of a would-be read; returns the reason it is a write, or `undefined`. */
const body = (
  scanner: Scanner,
  names: ReadonlySet<string>,
  initialDepth: number,
  mode: Mode
): Classifier.Classification | undefined => {
  const sql = scanner.sql
  let depth = initialDepth
  let copyTo = false
  let previous: Token = EOF
  let previousStart = 0
  let previousEnd = 0
  for (;;) {
    const kind = scanner.next()
    const start = scanner.start
    const end = scanner.end
    switch (kind) {
      case EOF:
      case SEMI: {
        if (depth !== 0) return unbalanced
        if (mode === "copy" && !copyTo) return unparseable("COPY without TO or FROM")
        return kind === EOF ? undefined : afterSemicolon(scanner)
      }
      case ERROR:
        return unparseable(scanner.error)
      case LPAREN: {
        if (mode !== "shape" && (previous === WORD || previous === QUOTED_IDENT)) {
          const name = identifierName(sql, previous, previousStart, previousEnd)
          if (isSideEffectFunction(names, name)) return write("side-effect-function", name)
        }
        depth++
        break
      }
      case RPAREN: {
        if (--depth < 0) return unbalanced
        break
      }
      case UNICODE_IDENT: {
        if (mode !== "shape") return unparseable("unicode-escaped identifier")
        break
      }
      case WORD: {
        if (mode === "shape") break
        const keyword = wordAt(scanner)
        if (keyword === undefined) break
        const found = mode === "copy" && depth === 0
          ? copyDirection(scanner, keyword)
          : wordInRead(scanner, keyword)
        if (found === "to-stdout") copyTo = true
        else if (found !== undefined) return found
        break
      }
    }
    previous = kind
    previousStart = start
    previousEnd = end
  }
}

const wordInRead = (scanner: Scanner, keyword: Keyword): Classifier.Classification | undefined => {
  switch (keyword) {
    case "for": {
      const clause = lockingClause(scanner)
      return clause === undefined ? undefined : write("locking-clause", clause)
    }
    case "into":
      return write("select-into")
    case "insert":
    case "update":
    case "delete":
    case "merge":
      return write("data-modifying-statement", keyword)
    default:
      return undefined
  }
}

// At depth 0 of a COPY the first TO or FROM gives the direction.
const copyDirection = (scanner: Scanner, keyword: Keyword): Classifier.Classification | "to-stdout" | undefined => {
  switch (keyword) {
    case "from":
      return write("copy-from")
    case "to": {
      const target = scanner.next()
      if (target === WORD && wordAt(scanner) === "stdout") return "to-stdout"
      // TO 'file' and TO PROGRAM act on the server the statement is sent to
      if (target === WORD) return write("copy-to-server", text(scanner))
      return target === STRING ? write("copy-to-server", "file") : unparseable("COPY TO without a target")
    }
    default:
      return wordInRead(scanner, keyword)
  }
}

// Called after FOR: reads ahead and rewinds unless a locking clause follows.
const lockingClause = (scanner: Scanner): string | undefined => {
  const mark = scanner.pos
  const clause = lockStrength(scanner)
  if (clause === undefined) scanner.pos = mark
  return clause
}

const lockStrength = (scanner: Scanner): string | undefined => {
  if (scanner.next() !== WORD) return undefined
  switch (wordAt(scanner)) {
    case "update":
      return "for update"
    case "share":
      return "for share"
    case "no":
      return nextWord(scanner) === "key" && nextWord(scanner) === "update" ? "for no key update" : undefined
    case "key":
      return nextWord(scanner) === "share" ? "for key share" : undefined
    default:
      return undefined
  }
}

const nextWord = (scanner: Scanner): Keyword | undefined => scanner.next() === WORD ? wordAt(scanner) : undefined

// EXPLAIN runs its statement only with ANALYZE.
const explainStatement = (scanner: Scanner, names: ReadonlySet<string>): Classifier.Classification => {
  const analyze = explainAnalyze(scanner)
  if (typeof analyze !== "boolean") return analyze
  if (!analyze) return explainOnly(scanner, names)
  const inner = statement(scanner, names)
  const detail = inner.detail === undefined ? inner.reason : `${inner.reason}: ${inner.detail}`
  return inner.intent === "read" ? read("explain-analyze-read", detail) : write("explain-analyze-write", detail)
}

// Consumes EXPLAIN's options and tells whether ANALYZE is on.
const explainAnalyze = (scanner: Scanner): boolean | Classifier.Classification => {
  let analyze = false
  let mark = scanner.pos
  let kind = scanner.next()
  if (kind === LPAREN) {
    const inner = scanner.next()
    const keyword = inner === WORD ? wordAt(scanner) : undefined
    scanner.pos = mark
    // `EXPLAIN (SELECT ...)` is a parenthesised statement, not an option list
    if (inner === LPAREN || keyword === "select" || keyword === "with" || keyword === "values" || keyword === "table") {
      return false
    }
    scanner.next()
    return explainOptions(scanner)
  }
  while (kind === WORD) {
    const keyword = wordAt(scanner)
    if (keyword === "analyze" || keyword === "analyse") analyze = true
    else if (keyword !== "verbose") break
    mark = scanner.pos
    kind = scanner.next()
  }
  scanner.pos = mark
  return analyze
}

// `(name [value], ...)`: ANALYZE is off only for an explicit false, off or 0.
const explainOptions = (scanner: Scanner): boolean | Classifier.Classification => {
  let analyze = false
  for (;;) {
    if (scanner.next() !== WORD) return unparseable("EXPLAIN option")
    const keyword = wordAt(scanner)
    const isAnalyze = keyword === "analyze" || keyword === "analyse"
    let values = 0
    let off = false
    let kind = scanner.next()
    while (kind !== COMMA && kind !== RPAREN) {
      if (kind === EOF || kind === ERROR || kind === LPAREN || kind === SEMI) return unparseable("EXPLAIN option")
      values++
      const value = kind === WORD ? wordAt(scanner) : undefined
      off = value === "false" || value === "off" || (kind === NUMBER && text(scanner) === "0")
      kind = scanner.next()
    }
    if (isAnalyze && !(values === 1 && off)) analyze = true
    if (kind === RPAREN) return analyze
  }
}

// A plain EXPLAIN only plans, so any explainable statement is a read if it is a single well-formed one.
const explainOnly = (scanner: Scanner, names: ReadonlySet<string>): Classifier.Classification => {
  const { depth, kind } = openParens(scanner)
  if (kind === ERROR) return unparseable(scanner.error)
  if (kind !== WORD) return unparseable("EXPLAIN without a statement")
  const keyword = wordAt(scanner)
  switch (keyword) {
    case "select":
    case "with":
    case "values":
    case "table":
    case "insert":
    case "update":
    case "delete":
    case "merge":
      return body(scanner, names, depth, "shape") ?? read("explain-only", keyword)
    default:
      // EXPLAIN EXECUTE, DECLARE, CREATE TABLE AS ... depend on server or session state
      return write("not-a-read", `explain ${text(scanner)}`)
  }
}

/** @internal */
import type * as Classifier from "../Classifier.js"

// -----------------------------------------------------------------------------
// Side-effecting functions
// -----------------------------------------------------------------------------

/** @internal */
export const defaultSideEffectFunctions: ReadonlySet<string> = new Set([
  // sequences: write, or read session state that only the primary has
  "nextval",
  "setval",
  "currval",
  "lastval",
  // session and transaction state
  "set_config",
  "setseed",
  "pg_notify",
  "txid_current",
  "txid_current_if_assigned",
  "pg_current_xact_id",
  "pg_current_xact_id_if_assigned",
  // WAL and server control
  "pg_current_wal_lsn",
  "pg_current_wal_insert_lsn",
  "pg_current_wal_flush_lsn",
  "pg_switch_wal",
  "pg_create_restore_point",
  "pg_promote",
  "pg_cancel_backend",
  "pg_terminate_backend",
  "pg_reload_conf",
  "pg_rotate_logfile",
  "pg_backup_start",
  "pg_backup_stop",
  "pg_start_backup",
  "pg_stop_backup",
  "pg_logical_emit_message",
  "pg_create_physical_replication_slot",
  "pg_create_logical_replication_slot",
  "pg_drop_replication_slot",
  "pg_replication_slot_advance",
  "pg_logical_slot_get_changes",
  "pg_logical_slot_get_binary_changes",
  // statistics (every pg_stat_reset* also matches by prefix)
  "pg_stat_reset",
  "pg_stat_reset_shared",
  "pg_stat_reset_single_table_counters",
  "pg_stat_reset_single_function_counters",
  "pg_stat_reset_slru",
  "pg_stat_reset_replication_slot",
  "pg_stat_reset_subscription_stats",
  // advisory locks (every pg_advisory_* and pg_try_advisory_* also matches by prefix)
  "pg_advisory_lock",
  "pg_advisory_lock_shared",
  "pg_advisory_unlock",
  "pg_advisory_unlock_shared",
  "pg_advisory_unlock_all",
  "pg_advisory_xact_lock",
  "pg_advisory_xact_lock_shared",
  "pg_try_advisory_lock",
  "pg_try_advisory_lock_shared",
  "pg_try_advisory_xact_lock",
  "pg_try_advisory_xact_lock_shared",
  // large objects (every lo_* also matches by prefix)
  "lo_import",
  "lo_export",
  "lo_unlink",
  "lo_create",
  "lo_creat",
  "lo_open",
  "lo_put",
  "lo_from_bytea",
  // run SQL text that this lexer cannot see
  "dblink_exec",
  "query_to_xml",
  "query_to_xml_and_xmlschema"
])

const sideEffectPrefixes: ReadonlyArray<string> = ["pg_advisory_", "pg_try_advisory_", "lo_", "pg_stat_reset"]

// A configured name is matched on its last component and on the whole name, so
// `audit.log_access` catches `log_access(...)` reached through search_path too.
const addConfiguredName = (names: Set<string>, name: string): void => {
  const full = name.trim().toLowerCase().replaceAll("\"", "")
  if (full.length === 0) return
  names.add(full)
  names.add(full.slice(full.lastIndexOf(".") + 1))
}

const isSideEffectFunction = (names: ReadonlySet<string>, name: string): boolean => {
  if (names.has(name)) return true
  for (const prefix of sideEffectPrefixes) {
    if (name.startsWith(prefix)) return true
  }
  return false
}

// -----------------------------------------------------------------------------
// Lexer
// -----------------------------------------------------------------------------

const EOF = 0
const WORD = 1 // bare identifier or keyword
const QUOTED_IDENT = 2 // "..."
const UNICODE_IDENT = 3 // U&"...", whose escapes could spell any name
const STRING = 4 // every kind of string literal, dollar quotes included
const NUMBER = 5
const PARAM = 6 // $1
const LPAREN = 7
const RPAREN = 8
const SEMI = 9
const COMMA = 10
const OTHER = 11 // operators and other punctuation, one character each
const ERROR = 12 // unterminated literal, identifier or comment

type Token = number

const isIdentStart = (c: number): boolean =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128

const isDigit = (c: number): boolean => c >= 48 && c <= 57

// `$` continues an identifier but not a dollar-quote tag
const isIdentPart = (c: number): boolean => isIdentStart(c) || isDigit(c) || c === 36

const isTagPart = (c: number): boolean => isIdentStart(c) || isDigit(c)

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13)

const lower = (c: number): number => c | 0x20

/** A single-pass PostgreSQL lexer that reports token kinds and positions without building tokens. */
class Scanner {
  pos = 0
  start = 0
  end = 0
  error = ""

  constructor(readonly sql: string) {}

  next(): Token {
    const sql = this.sql
    const length = sql.length
    let i = this.pos
    for (;;) {
      if (i >= length) return this.token(length, length, EOF)
      const c = sql.charCodeAt(i)
      if (isSpace(c)) {
        i++
      } else if (c === 45 && sql.charCodeAt(i + 1) === 45) { // --
        i += 2
        while (i < length && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++
      } else if (c === 47 && sql.charCodeAt(i + 1) === 42) { // /*
        const end = skipBlockComment(sql, i + 2)
        if (end < 0) return this.fail(i, "unterminated block comment")
        i = end
      } else {
        break
      }
    }
    const c = sql.charCodeAt(i)
    if (isIdentStart(c)) return this.word(i, c)
    switch (c) {
      case 39: // '
        return this.standardString(i, i + 1)
      case 34: // "
        return this.quotedIdent(i, i + 1, QUOTED_IDENT)
      case 36: // $
        return this.dollar(i)
      case 40:
        return this.token(i, i + 1, LPAREN)
      case 41:
        return this.token(i, i + 1, RPAREN)
      case 59:
        return this.token(i, i + 1, SEMI)
      case 44:
        return this.token(i, i + 1, COMMA)
    }
    if (isDigit(c) || (c === 46 && isDigit(sql.charCodeAt(i + 1)))) return this.number(i)
    return this.token(i, i + 1, OTHER)
  }

  private token(start: number, end: number, kind: Token): Token {
    this.start = start
    this.end = end
    this.pos = end
    return kind
  }

  private fail(start: number, error: string): Token {
    this.error = error
    return this.token(start, this.sql.length, ERROR)
  }

  // A word, or a literal introduced by a one-letter prefix (E'', B'', X'', N'', U&'', U&"")
  private word(i: number, c: number): Token {
    const sql = this.sql
    const next = sql.charCodeAt(i + 1)
    const prefix = lower(c)
    if (next === 39) {
      if (prefix === 101) return this.escapeString(i, i + 2)
      if (prefix === 98 || prefix === 120 || prefix === 110) return this.standardString(i, i + 2)
    } else if (prefix === 117 && next === 38) {
      const quote = sql.charCodeAt(i + 2)
      if (quote === 39) return this.standardString(i, i + 3)
      if (quote === 34) return this.quotedIdent(i, i + 3, UNICODE_IDENT)
    }
    let j = i + 1
    while (j < sql.length && isIdentPart(sql.charCodeAt(j))) j++
    return this.token(i, j, WORD)
  }

  // '...' with '' as the only escape (standard_conforming_strings = on)
  private standardString(start: number, from: number): Token {
    return this.doubledQuote(start, from, "'", STRING, "unterminated string literal")
  }

  // E'...' where a backslash escapes the next character
  private escapeString(start: number, from: number): Token {
    const sql = this.sql
    const length = sql.length
    let i = from
    while (i < length) {
      const c = sql.charCodeAt(i)
      if (c === 92) {
        i += 2
      } else if (c === 39) {
        if (sql.charCodeAt(i + 1) !== 39) return this.token(start, i + 1, STRING)
        i += 2
      } else {
        i++
      }
    }
    return this.fail(start, "unterminated string literal")
  }

  private quotedIdent(start: number, from: number, kind: Token): Token {
    return this.doubledQuote(start, from, "\"", kind, "unterminated quoted identifier")
  }

  // Text up to a closing quote, where a doubled quote stands for itself.
  private doubledQuote(start: number, from: number, quoteChar: string, kind: Token, unterminated: string): Token {
    const sql = this.sql
    const code = quoteChar.charCodeAt(0)
    let i = from
    for (;;) {
      const quote = sql.indexOf(quoteChar, i)
      if (quote < 0) return this.fail(start, unterminated)
      if (sql.charCodeAt(quote + 1) !== code) return this.token(start, quote + 1, kind)
      i = quote + 2
    }
  }

  // $1, $$...$$ or $tag$...$tag$
  private dollar(start: number): Token {
    const sql = this.sql
    let i = start + 1
    if (isDigit(sql.charCodeAt(i))) {
      while (isDigit(sql.charCodeAt(i))) i++
      return this.token(start, i, PARAM)
    }
    if (sql.charCodeAt(i) !== 36) {
      if (!isIdentStart(sql.charCodeAt(i))) return this.token(start, i, OTHER)
      while (isTagPart(sql.charCodeAt(i))) i++
      if (sql.charCodeAt(i) !== 36) return this.token(start, start + 1, OTHER)
    }
    const delimiter = sql.slice(start, i + 1)
    const close = sql.indexOf(delimiter, i + 1)
    if (close < 0) return this.fail(start, "unterminated dollar-quoted string")
    return this.token(start, close + delimiter.length, STRING)
  }

  // Letters after a number start a new token, as in PostgreSQL before 15: `1into` is `1 into`.
  private number(start: number): Token {
    const sql = this.sql
    let i = start
    while (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === 95) i++
    if (sql.charCodeAt(i) === 46 && sql.charCodeAt(i + 1) !== 46) {
      i++
      while (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === 95) i++
    }
    if (lower(sql.charCodeAt(i)) === 101) {
      const sign = sql.charCodeAt(i + 1)
      const digit = sign === 43 || sign === 45 ? i + 2 : i + 1
      if (isDigit(sql.charCodeAt(digit))) {
        i = digit
        while (isDigit(sql.charCodeAt(i))) i++
      }
    }
    return this.token(start, i, NUMBER)
  }
}

// PostgreSQL block comments nest.
const skipBlockComment = (sql: string, from: number): number => {
  const length = sql.length
  let depth = 1
  let i = from
  while (i < length) {
    const c = sql.charCodeAt(i)
    if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      depth++
      i += 2
    } else if (c === 42 && sql.charCodeAt(i + 1) === 47) {
      i += 2
      if (--depth === 0) return i
    } else {
      i++
    }
  }
  return -1
}

// -----------------------------------------------------------------------------
// Keywords
// -----------------------------------------------------------------------------

const keywords = [
  "select",
  "with",
  "values",
  "table",
  "show",
  "explain",
  "copy",
  "for",
  "into",
  "insert",
  "update",
  "delete",
  "merge",
  "share",
  "no",
  "key",
  "from",
  "to",
  "stdout",
  "analyze",
  "analyse",
  "verbose",
  "false",
  "off"
] as const

type Keyword = typeof keywords[number]

const keywordsByLength: ReadonlyArray<ReadonlyArray<Keyword>> = (() => {
  const table: Array<Array<Keyword>> = []
  for (const keyword of keywords) {
    while (table.length <= keyword.length) table.push([])
    table[keyword.length]!.push(keyword)
  }
  return table
})()

// Compares characters in place so that no token is ever sliced to be recognised.
const keywordAt = (sql: string, start: number, end: number): Keyword | undefined => {
  const candidates = keywordsByLength[end - start]
  if (candidates === undefined) return undefined
  outer: for (const keyword of candidates) {
    for (let k = 0; k < keyword.length; k++) {
      if (lower(sql.charCodeAt(start + k)) !== keyword.charCodeAt(k)) continue outer
    }
    return keyword
  }
  return undefined
}

const wordAt = (scanner: Scanner): Keyword | undefined => keywordAt(scanner.sql, scanner.start, scanner.end)

// -----------------------------------------------------------------------------
// Classification
// -----------------------------------------------------------------------------

const read = (reason: Classifier.Reason, detail?: string): Classifier.Classification =>
  detail === undefined ? { intent: "read", reason } : { intent: "read", reason, detail }

const write = (reason: Classifier.Reason, detail?: string): Classifier.Classification =>
  detail === undefined ? { intent: "write", reason } : { intent: "write", reason, detail }

const unparseable = (detail: string): Classifier.Classification => write("unparseable", detail)

const unbalanced = unparseable("unbalanced parentheses")

const text = (scanner: Scanner): string => scanner.sql.slice(scanner.start, scanner.end).toLowerCase()

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

// -----------------------------------------------------------------------------
// Schema changes
// -----------------------------------------------------------------------------

// Statements after which a replica that has not replayed them may answer a
// read with "relation does not exist": DDL, privileges, comments, and DO
// blocks (whose dollar-quoted bodies the lexer does not look into).
const schemaKeywords: ReadonlySet<string> = new Set([
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

// -----------------------------------------------------------------------------
// Classifier
// -----------------------------------------------------------------------------

const defaultCacheSize = 4096

/** @internal */
export const make = (options?: Classifier.Options | undefined): Classifier.Classifier => {
  const configured = options?.sideEffectFunctions ?? []
  // a lone string is an Iterable<string> of its characters
  const base = new Set(defaultSideEffectFunctions)
  for (const name of typeof configured === "string" ? [configured] : configured) addConfiguredName(base, name)
  const names = new Set(base)
  const limit = options?.cacheSize === undefined ? defaultCacheSize : Math.max(0, Math.floor(options.cacheSize)) || 0
  const cache = new Map<string, Classifier.StatementKind>()
  const explain = (sql: string): Classifier.Classification => classifyText(sql, names)
  const kind = (sql: string): Classifier.StatementKind => {
    const cached = cache.get(sql)
    if (cached !== undefined) return cached
    const result: Classifier.StatementKind = classifyText(sql, names).intent === "read"
      ? "read"
      : isSchemaChange(sql)
      ? "schema-change"
      : "write"
    if (limit > 0) {
      if (cache.size >= limit) cache.delete(cache.keys().next().value!)
      cache.set(sql, result)
    }
    return result
  }
  const classify = (sql: string): Classifier.Intent => kind(sql) === "read" ? "read" : "write"
  const setDiscoveredFunctions = (discovered: Iterable<string>): void => {
    names.clear()
    for (const name of base) names.add(name)
    for (const name of discovered) addConfiguredName(names, name)
    // A text remembered as a read may call a function that is now known to write.
    cache.clear()
  }
  return { classify, kind, explain, setDiscoveredFunctions, cacheSize: () => cache.size }
}

const defaultClassifier = make()

/** @internal */
export const routeQueryType = defaultClassifier.classify

/** @internal */
export const explain = defaultClassifier.explain

/** @internal */

// Lexer: token kinds and positions, never token strings.

/** @internal */
export const EOF = 0
/** @internal */
export const WORD = 1 // bare identifier or keyword
/** @internal */
export const QUOTED_IDENT = 2 // "..."
/** @internal */
export const UNICODE_IDENT = 3 // U&"...", whose escapes could spell any name
/** @internal */
export const STRING = 4 // every kind of string literal, dollar quotes included
/** @internal */
export const NUMBER = 5
/** @internal */
export const PARAM = 6 // $1
/** @internal */
export const LPAREN = 7
/** @internal */
export const RPAREN = 8
/** @internal */
export const SEMI = 9
/** @internal */
export const COMMA = 10
/** @internal */
export const OTHER = 11 // operators and other punctuation, one character each
/** @internal */
export const ERROR = 12 // unterminated literal, identifier or comment

/** @internal */
export type Token = number

const isIdentStart = (c: number): boolean =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128

const isDigit = (c: number): boolean => c >= 48 && c <= 57

// `$` continues an identifier but not a dollar-quote tag
const isIdentPart = (c: number): boolean => isIdentStart(c) || isDigit(c) || c === 36

const isTagPart = (c: number): boolean => isIdentStart(c) || isDigit(c)

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13)

const lower = (c: number): number => c | 0x20

/** A single-pass PostgreSQL lexer that reports token kinds and positions without building tokens. @internal */
export class Scanner {
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

/** @internal */
export type Keyword = typeof keywords[number]

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

/** @internal */
export const wordAt = (scanner: Scanner): Keyword | undefined => keywordAt(scanner.sql, scanner.start, scanner.end)

/** @internal */
export const text = (scanner: Scanner): string => scanner.sql.slice(scanner.start, scanner.end).toLowerCase()

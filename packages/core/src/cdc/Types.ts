/**
 * Column types of the change stream: how a value in PostgreSQL's text output
 * becomes a JavaScript value, and how that value is written to each target
 * dialect. One table, keyed by type OID; a type absent from it is refused
 * before anything is applied.
 *
 * @since 0.1.0
 */

/**
 * The SQL dialects a target can speak.
 *
 * @since 0.1.0
 * @category models
 */
export type Dialect = "pg" | "sqlite"

/**
 * How one scalar type is decoded and written to each dialect.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScalarType {
  readonly name: string
  /** Server text output (DateStyle ISO, TimeZone UTC) to the stream's value. */
  readonly decode: (text: string) => unknown
  /** The stream's value to a bind parameter for PostgreSQL. */
  readonly toPg: (value: unknown) => unknown
  /** The element as it appears inside a PostgreSQL array literal (unquoted). */
  readonly toPgElement: (value: unknown) => string
  /** The stream's value to a bind parameter for SQLite. */
  readonly toSqlite: (value: unknown) => unknown
  /** The element inside the JSON text SQLite stores an array as. */
  readonly toJsonElement: (value: unknown) => string
  readonly sqliteType: "INTEGER" | "REAL" | "TEXT" | "BLOB"
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

const decodeBytea = (text: string): Uint8Array =>
  text.startsWith("\\x") ? Buffer.from(text.slice(2), "hex") : Buffer.from(unescapeBytea(text), "binary")

// bytea_output = escape (not our session's setting, kept for adopted servers).
const unescapeBytea = (text: string): string =>
  text.replace(/\\(\\|[0-7]{3})/g, (_, m: string) => m === "\\" ? "\\" : String.fromCharCode(parseInt(m, 8)))

const same = (value: unknown) => value
const str = (value: unknown) => String(value)
const json = (value: unknown) => JSON.stringify(value)

// "2026-12-01 20:51:00.123456+00" -> "2026-12-01T20:51:00.123456Z"
const isoTimestamptz = (value: unknown): string => {
  const text = String(value)
  if (text === "infinity" || text === "-infinity") return text
  return text.replace(" ", "T").replace(/\+00$/, "Z").replace(/([+-]\d\d)$/, "$1:00")
}
const isoTimestamp = (value: unknown): string => String(value).replace(" ", "T")

const textType = (name: string): ScalarType => ({
  name,
  decode: same,
  toPg: same,
  toPgElement: str,
  toSqlite: same,
  toJsonElement: json,
  sqliteType: "TEXT"
})

const intType = (name: string): ScalarType => ({
  name,
  decode: Number,
  toPg: same,
  toPgElement: str,
  toSqlite: same,
  toJsonElement: str,
  sqliteType: "INTEGER"
})

const floatType = (name: string): ScalarType => ({
  name,
  decode: Number,
  toPg: same,
  toPgElement: str,
  toSqlite: same,
  toJsonElement: (value) => Number.isFinite(value) ? String(value) : JSON.stringify(String(value)),
  sqliteType: "REAL"
})

const timeType = (name: string, iso: (value: unknown) => string): ScalarType => ({
  name,
  decode: same,
  toPg: same,
  toPgElement: str,
  toSqlite: iso,
  toJsonElement: (value) => JSON.stringify(iso(value)),
  sqliteType: "TEXT"
})

// JSON stays the server's text: exact (numbers beyond 2^53, key order of
// json) and a JSON null is not confused with SQL NULL.
const jsonType = (name: string): ScalarType => ({
  name,
  decode: same,
  toPg: same,
  toPgElement: str,
  toSqlite: same,
  toJsonElement: str,
  sqliteType: "TEXT"
})

/**
 * Scalar types by OID.
 *
 * @since 0.1.0
 * @category types
 */
export const scalars: ReadonlyMap<number, ScalarType> = new Map<number, ScalarType>([
  [16, {
    name: "bool",
    decode: (text) => text === "t",
    toPg: same,
    toPgElement: (value) => value ? "t" : "f",
    toSqlite: (value) => value ? 1 : 0,
    toJsonElement: (value) => value ? "true" : "false",
    sqliteType: "INTEGER"
  }],
  [17, {
    name: "bytea",
    decode: decodeBytea,
    toPg: (value) => Buffer.from(value as Uint8Array),
    toPgElement: (value) => `\\x${hex(value as Uint8Array)}`,
    toSqlite: (value) => Buffer.from(value as Uint8Array),
    toJsonElement: (value) => JSON.stringify(`\\x${hex(value as Uint8Array)}`),
    sqliteType: "BLOB"
  }],
  [20, {
    name: "int8",
    decode: BigInt,
    toPg: str,
    toPgElement: str,
    // better-sqlite3 binds a bigint as a 64-bit integer: no precision lost.
    toSqlite: same,
    toJsonElement: str,
    sqliteType: "INTEGER"
  }],
  [21, intType("int2")],
  [23, intType("int4")],
  [25, textType("text")],
  [114, jsonType("json")],
  [700, floatType("float4")],
  [701, floatType("float8")],
  [1042, textType("bpchar")],
  [1043, textType("varchar")],
  [1082, timeType("date", str)],
  [1114, timeType("timestamp", isoTimestamp)],
  [1184, timeType("timestamptz", isoTimestamptz)],
  // numeric stays a string: exact, and SQLite stores it as TEXT for the same reason.
  [1700, textType("numeric")],
  [2950, textType("uuid")],
  [3802, jsonType("jsonb")]
])

/**
 * Array type OID → element type OID.
 *
 * @since 0.1.0
 * @category types
 */
export const arrays: ReadonlyMap<number, number> = new Map([
  [1000, 16],
  [1001, 17],
  [1016, 20],
  [1005, 21],
  [1007, 23],
  [1009, 25],
  [199, 114],
  [1021, 700],
  [1022, 701],
  [1014, 1042],
  [1015, 1043],
  [1182, 1082],
  [1115, 1114],
  [1185, 1184],
  [1231, 1700],
  [2951, 2950],
  [3807, 3802]
])

/**
 * How one column's values are decoded, and encoded for each dialect.
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnType {
  readonly decode: (text: string) => unknown
  readonly toPg: (value: unknown) => unknown
  readonly toSqlite: (value: unknown) => unknown
  readonly sqliteType: string
}

const nullable = (f: (value: unknown) => unknown) => (value: unknown) => value === null || value === undefined ? null : f(value)

/**
 * How a column of type `oid` is handled, or undefined for an unsupported type.
 *
 * @since 0.1.0
 * @category types
 */
export const columnType = (oid: number): ColumnType | undefined => {
  const scalar = scalars.get(oid)
  if (scalar) {
    return {
      decode: scalar.decode,
      toPg: nullable(scalar.toPg),
      toSqlite: nullable(scalar.toSqlite),
      sqliteType: scalar.sqliteType
    }
  }
  const elementOid = arrays.get(oid)
  const element = elementOid === undefined ? undefined : scalars.get(elementOid)
  if (!element) return undefined
  return {
    decode: (text) => parseArray(text, element.decode),
    toPg: nullable((value) => pgArrayLiteral(value, element)),
    toSqlite: nullable((value) => jsonArray(value, element)),
    sqliteType: "TEXT"
  }
}

/**
 * True when the type OID is one the change stream and every target handle.
 *
 * @since 0.1.0
 * @category types
 */
export const isSupported = (oid: number): boolean => columnType(oid) !== undefined

/**
 * A decoder for any OID: unsupported types stay the server's text.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decoderFor = (oid: number): (text: string) => unknown => columnType(oid)?.decode ?? same

// -----------------------------------------------------------------------------
// Arrays
// -----------------------------------------------------------------------------

/**
 * Parses PostgreSQL's array text output (`{1,2,NULL}`, `{"a b","c\"d"}`,
 * nested `{{1,2},{3,4}}`). Bounds decorations (`[0:1]={...}`) are dropped.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parseArray = (text: string, decode: (text: string) => unknown): unknown => {
  let i = text.startsWith("[") ? text.indexOf("=") + 1 : 0
  // Malformed text (never sent by the server for an array column) fails instead of looping past its end.
  const malformed = () => new Error(`not an array literal (at character ${i + 1} of ${text.length})`)
  const at = (index: number) => {
    if (index >= text.length) throw malformed()
    return text[index]
  }
  const parseLevel = (): Array<unknown> => {
    const out: Array<unknown> = []
    if (at(i) !== "{") throw malformed()
    i++ // '{'
    if (at(i) === "}") {
      i++
      return out
    }
    for (;;) {
      if (at(i) === "{") {
        out.push(parseLevel())
      } else if (at(i) === "\"") {
        let value = ""
        i++
        while (at(i) !== "\"") {
          if (at(i) === "\\") i++
          value += at(i)
          i++
        }
        i++
        out.push(decode(value))
      } else {
        const start = i
        while (at(i) !== "," && at(i) !== "}") i++
        const raw = text.slice(start, i)
        out.push(raw === "NULL" ? null : decode(raw))
      }
      if (at(i) === ",") {
        i++
        continue
      }
      if (at(i) !== "}") throw malformed()
      i++ // '}'
      return out
    }
  }
  return parseLevel()
}

const quote = (text: string) => `"${text.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")}"`

const pgArrayLiteral = (value: unknown, element: ScalarType): string =>
  Array.isArray(value)
    ? `{${value.map((v) => Array.isArray(v) ? pgArrayLiteral(v, element) : v === null ? "NULL" : quote(element.toPgElement(v))).join(",")}}`
    : String(value)

const jsonArray = (value: unknown, element: ScalarType): string =>
  Array.isArray(value)
    ? `[${value.map((v) => Array.isArray(v) ? jsonArray(v, element) : v === null ? "null" : element.toJsonElement(v)).join(",")}]`
    : "null"

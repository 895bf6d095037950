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
  // interval: ISO 8601 text (the source sessions print IntervalStyle iso_8601,
  // "P1Y2M3DT4H5M6.5S"), which every PostgreSQL reads back whatever its own
  // IntervalStyle: months, days and microseconds each kept, exact.
  [1186, textType("interval")],
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
  [1187, 1186],
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

// -----------------------------------------------------------------------------
// Types resolved from catalog facts (enums, domains, arrays of them, text pass-through)
// -----------------------------------------------------------------------------

/**
 * What the source's catalog says about one type a column uses (directly, as
 * an array element, or as a domain's base): a row of `pg_type`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TypeFact {
  readonly oid: number
  /** `pg_type.typname`. */
  readonly name: string
  /** `pg_type.typtype`: `b` base, `c` composite, `d` domain, `e` enum, `m` multirange, `p` pseudo, `r` range. */
  readonly kind: string
  /** `typbasetype` of a domain, 0 otherwise. */
  readonly baseType: number
  /** A domain's base type with the domain's modifier (`format_type(typbasetype, typtypmod)`, e.g. `numeric(12,2)`). */
  readonly baseFormatted?: string | null | undefined
  /** `typelem` of a true array type (its element's `typarray` is this type), 0 otherwise. */
  readonly element: number
}

/**
 * What a rule does with a column whose type is not mapped: refuse the rule
 * (`fail`, an `UnsupportedType` naming table, column and type) or carry the
 * server's text form into a `text` column (`text`).
 *
 * @since 0.1.0
 * @category models
 */
export type UnsupportedTypes = "fail" | "text"

/**
 * A column type resolved from the catalog: how its values decode and encode,
 * and the column type a created PostgreSQL target table gets.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedType extends ColumnType {
  /** The PostgreSQL target's column type; undefined: the source column's own (`format_type` with its modifier). */
  readonly pgType: string | undefined
  /** True when the value is the server's text form of a type that is not mapped (`unsupportedTypes: "text"`). */
  readonly passthrough: boolean
}

/**
 * The types of one session: the built-in map plus the enums, domains and
 * arrays its catalog facts describe.
 *
 * @since 0.1.0
 * @category models
 */
export interface Registry {
  /** How a column of type `oid` is handled; undefined: unsupported under `fail`. */
  readonly columnType: (oid: number) => ResolvedType | undefined
  /** The decoder of `oid` for the change stream and the snapshot (the server's text when unsupported). */
  readonly decoderFor: (oid: number) => (text: string) => unknown
  /**
   * False for a type created after the catalog was read (an OID at or above
   * 16384, PostgreSQL's first for user objects, absent from the facts):
   * only the catalog can say what it is.
   */
  readonly knows: (oid: number) => boolean
}

// PostgreSQL's FirstNormalObjectId: OIDs below are the server's own types.
const firstUserOid = 16384

/** A scalar with the PostgreSQL target type it needs (undefined: the source's own). */
interface Scalar {
  readonly scalar: ScalarType
  readonly pgType: string | undefined
}

// Enum values are their labels: text on both targets. Creating the enum on a
// PostgreSQL target would break on the first label the source adds later
// (ALTER TYPE ... ADD VALUE sends no Relation message); text never does.
const enumType = (name: string): ScalarType => textType(name)

const passthroughType: ResolvedType = {
  decode: same,
  toPg: nullable(same),
  toSqlite: nullable(same),
  sqliteType: "TEXT",
  pgType: "text",
  passthrough: true
}

const fromScalar = ({ pgType, scalar }: Scalar): ResolvedType => ({
  decode: scalar.decode,
  toPg: nullable(scalar.toPg),
  toSqlite: nullable(scalar.toSqlite),
  sqliteType: scalar.sqliteType,
  pgType,
  passthrough: false
})

const fromElement = ({ pgType, scalar }: Scalar): ResolvedType => ({
  decode: (text) => parseArray(text, scalar.decode),
  toPg: nullable((value) => pgArrayLiteral(value, scalar)),
  toSqlite: nullable((value) => jsonArray(value, scalar)),
  sqliteType: "TEXT",
  pgType: pgType === undefined ? undefined : `${pgType}[]`,
  passthrough: false
})

/**
 * Resolves column types from catalog facts, a pure function of them: a
 * built-in type as in `scalars`/`arrays`; an enum as text (its label); a
 * domain as its base type (recursively, with the domain's modifier); an
 * array of any of these element-wise (NULL elements and nesting kept); any
 * other type (composite, range, multirange, geometric, tsvector, xml, …)
 * unsupported under `fail`, its text form under `text`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (facts: Iterable<TypeFact>, unsupportedTypes: UnsupportedTypes = "fail"): Registry => {
  const byOid = new Map<number, TypeFact>()
  for (const fact of facts) byOid.set(fact.oid, fact)
  const scalarOf = (oid: number, depth: number): Scalar | undefined => {
    const builtin = scalars.get(oid)
    if (builtin) return { scalar: builtin, pgType: undefined }
    const fact = byOid.get(oid)
    if (!fact || depth > 32) return undefined
    if (fact.kind === "e") return { scalar: enumType(fact.name), pgType: "text" }
    if (fact.kind === "d") {
      const base = scalarOf(fact.baseType, depth + 1)
      return base && { scalar: base.scalar, pgType: base.pgType ?? fact.baseFormatted ?? undefined }
    }
    return undefined
  }
  const resolve = (oid: number, depth: number): ResolvedType | undefined => {
    const scalar = scalarOf(oid, depth)
    if (scalar) return fromScalar(scalar)
    const builtinElement = arrays.get(oid)
    if (builtinElement !== undefined) return fromElement({ scalar: scalars.get(builtinElement)!, pgType: undefined })
    const fact = byOid.get(oid)
    if (!fact || depth > 32) return undefined
    if (fact.element !== 0) {
      const element = scalarOf(fact.element, depth + 1)
      return element && fromElement(element)
    }
    if (fact.kind === "d") {
      // A domain over an array type.
      const base = resolve(fact.baseType, depth + 1)
      return base && { ...base, pgType: base.pgType ?? fact.baseFormatted ?? undefined }
    }
    return undefined
  }
  const cache = new Map<number, ResolvedType | undefined>()
  const columnType = (oid: number): ResolvedType | undefined => {
    if (!cache.has(oid)) cache.set(oid, resolve(oid, 0) ?? (unsupportedTypes === "text" ? passthroughType : undefined))
    return cache.get(oid)
  }
  return {
    columnType,
    decoderFor: (oid) => columnType(oid)?.decode ?? same,
    knows: (oid) => oid < firstUserOid || byOid.has(oid)
  }
}

/**
 * The built-in types only, unsupported types refused: what a session uses
 * when it read no catalog facts.
 *
 * @since 0.1.0
 * @category constructors
 */
export const builtins: Registry = makeRegistry([])

/**
 * The catalog query whose rows are the `TypeFact`s of the types the given
 * columns use, followed through array elements and domain bases: `$1` is an
 * `oid[]` of column types.
 *
 * @since 0.1.0
 * @category sql
 */
export const typeFactsQuery = `WITH RECURSIVE used(oid) AS (
    SELECT unnest($1::oid[])
  UNION
    SELECT x.next FROM used u JOIN pg_type t ON t.oid = u.oid,
      LATERAL (VALUES (NULLIF(t.typbasetype, 0)), (NULLIF(t.typelem, 0))) AS x(next)
    WHERE x.next IS NOT NULL
)
SELECT t.oid::int AS oid, t.typname AS name, t.typtype::text AS kind, t.typbasetype::int AS "baseType",
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS "baseFormatted",
       CASE WHEN e.typarray = t.oid THEN t.typelem::int ELSE 0 END AS element
FROM pg_type t JOIN used u ON u.oid = t.oid
LEFT JOIN pg_type e ON e.oid = t.typelem`

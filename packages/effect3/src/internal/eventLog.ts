/** @internal */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Consistency from "../Consistency.js"
import * as Durable from "../Durable.js"
import type * as EventLog from "../EventLog.js"
import type { CommitFailed, ReplicaNotCaughtUp } from "../RouterError.js"
import { InvalidConfig, PrimaryUnavailable } from "../RouterError.js"
import * as SqlRouter from "../SqlRouter.js"
import { describe, isConnectionError } from "./errors.js"

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

/** @internal */
export class VersionMismatch extends Schema.TaggedError<VersionMismatch>("effect-sql-router/EventLog/VersionMismatch")(
  "VersionMismatch",
  {
    assumed: Schema.Number,
    actual: Schema.Number
  }
) {
  override get message(): string {
    return `Append refused: it assumed the event log at version ${this.assumed}, but it is at ${this.actual}`
  }
}

/** @internal */
export class ProjectionNotFound
  extends Schema.TaggedError<ProjectionNotFound>("effect-sql-router/EventLog/ProjectionNotFound")(
    "ProjectionNotFound",
    { id: Schema.Number }
  )
{
  override get message(): string {
    return `Projection ${this.id} has no version yet (initProjectionVersion creates it)`
  }
}

/** @internal */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>("effect-sql-router/EventLog/InvalidEvent")(
  "InvalidEvent",
  {
    typeName: Schema.String,
    version: Schema.optional(Schema.Number),
    /** Where in the payload: `$` is the payload itself, then `.key` and `[index]`. */
    path: Schema.optional(Schema.String),
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {
  override get message(): string {
    const at = this.version === undefined ? "" : ` at version ${this.version}`
    const where = this.path === undefined ? "" : ` (payload ${this.path})`
    return `Event ${this.typeName}${at} is invalid${where}: ${this.reason}`
  }
}

/** @internal */
export class InvalidInput extends Schema.TaggedError<InvalidInput>("effect-sql-router/EventLog/InvalidInput")(
  "InvalidInput",
  {
    operation: Schema.String,
    argument: Schema.String,
    reason: Schema.String
  }
) {
  override get message(): string {
    return `EventLog.${this.operation}: ${this.argument} ${this.reason} (nothing was run)`
  }
}

/** @internal */
export class TransactionClosed
  extends Schema.TaggedError<TransactionClosed>("effect-sql-router/EventLog/TransactionClosed")(
    "TransactionClosed",
    { operation: Schema.String }
  )
{
  override get message(): string {
    return `EventLog.${this.operation} after its transaction ended: a Reader or Writer works only inside ` +
      "the readOnly or readWrite body that gave it (nothing was run)"
  }
}

// -----------------------------------------------------------------------------
// Tags
// -----------------------------------------------------------------------------

/** @internal */
export const ReaderTypeId: EventLog.ReaderTypeId = Symbol.for("effect-sql-router/EventLog/Reader") as EventLog.ReaderTypeId

/** @internal */
export const WriterTypeId: EventLog.WriterTypeId = Symbol.for("effect-sql-router/EventLog/Writer") as EventLog.WriterTypeId

/** @internal */
export const EventLogTag = Context.GenericTag<EventLog.EventLog>("effect-sql-router/EventLog")

/** @internal */
export const ReaderTag = Context.GenericTag<EventLog.Reader>("effect-sql-router/EventLog/Reader")

/** @internal */
export const WriterTag = Context.GenericTag<EventLog.Writer>("effect-sql-router/EventLog/Writer")

// -----------------------------------------------------------------------------
// Options and SQL
// -----------------------------------------------------------------------------

/** PostgreSQL truncates longer identifiers (NAMEDATALEN - 1). */
const maxIdentifierBytes = 63

/** The log's triggers are named `<table>_notify` and `<table>_immutable`. */
const triggerSuffixes = ["_notify", "_immutable"]

/** The default projection table is `<table>_projection`. */
const projectionSuffix = "_projection"

const longestTriggerSuffix = Math.max(...triggerSuffixes.map((suffix) => suffix.length))

const identifier = /^[a-z_][a-z0-9_]*$/

/**
 * Names are plain lower-case identifiers (so the quoted name is the one a
 * user types unquoted) and always written quoted, so reserved words such as
 * `order` or `user` work.
 */
const checkName = (field: string, value: unknown, maxBytes: number) =>
  typeof value === "string" && identifier.test(value) && value.length <= maxBytes
    ? Effect.succeed(value)
    : Effect.fail(
      new InvalidConfig({
        field,
        reason: `must be a lower-case SQL identifier (a-z, 0-9, _; not starting with a digit) of 1 to ${maxBytes} bytes`
      })
    )

const quote = (name: string) => `"${name}"`

/** Every statement of one log, its identifiers checked once and written in. */
interface Queries {
  readonly migrate: ReadonlyArray<string>
  readonly systemVersion: string
  readonly eventAt: string
  readonly eventAfter: string
  readonly eventsForward: string
  readonly eventsReverse: string
  readonly append: string
  readonly projectionVersion: string
  readonly initProjection: string
  readonly setProjection: string
  readonly projectionState: string
}

const columns = `version, type_name, payload, "time", revision_vcs`

const queriesFor = (tableName: string, projectionsName: string, channel: string): Queries => {
  const table = quote(tableName)
  const projections = quote(projectionsName)
  return {
    migrate: [
      // One migration at a time: CREATE OR REPLACE FUNCTION races with itself.
      `SELECT pg_advisory_xact_lock(hashtext('effect-sql-router/EventLog'))`,
      `CREATE TABLE IF NOT EXISTS ${table} (
        version bigint PRIMARY KEY CHECK (version > 0),
        type_name text NOT NULL,
        payload jsonb NOT NULL,
        "time" timestamptz NOT NULL DEFAULT clock_timestamp(),
        revision_vcs text NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE IF NOT EXISTS ${projections} (
        id integer PRIMARY KEY,
        version bigint NOT NULL CHECK (version >= 0)
      )`,
      `CREATE OR REPLACE FUNCTION effect_sql_router_event_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify(TG_ARGV[0], NEW.version::text); RETURN NEW; END $$`,
      // Appends are gapless only if no row ever leaves: the log is immutable.
      `CREATE OR REPLACE FUNCTION effect_sql_router_event_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the event log % is append-only', TG_TABLE_NAME; END $$`,
      `CREATE OR REPLACE TRIGGER ${quote(`${tableName}_notify`)} AFTER INSERT ON ${table}
        FOR EACH ROW EXECUTE FUNCTION effect_sql_router_event_log_notify('${channel}')`,
      `CREATE OR REPLACE TRIGGER ${quote(`${tableName}_immutable`)} BEFORE UPDATE OR DELETE ON ${table}
        FOR EACH ROW EXECUTE FUNCTION effect_sql_router_event_log_immutable()`
    ],
    systemVersion: `SELECT coalesce(max(version), 0) AS version FROM ${table}`,
    eventAt: `SELECT ${columns} FROM ${table} WHERE version = $1`,
    eventAfter: `SELECT ${columns} FROM ${table} WHERE version > $1 ORDER BY version LIMIT 1`,
    eventsForward: `SELECT ${columns} FROM ${table} WHERE version >= $1 ORDER BY version LIMIT $2`,
    eventsReverse: `SELECT ${columns} FROM ${table} WHERE version <= $1 ORDER BY version DESC LIMIT $2`,
    // No sequence: the version is the assumed one plus one, written only when
    // the log is at the assumed version. A concurrent appender of the same
    // version waits on the primary key and then does nothing; a rolled-back one
    // leaves no hole, because nothing was taken from a sequence.
    append: `INSERT INTO ${table} (version, type_name, payload, revision_vcs)
      SELECT $1::bigint + 1, $2, $3::jsonb, $4
      WHERE (SELECT coalesce(max(version), 0) FROM ${table}) = $1::bigint
      ON CONFLICT (version) DO NOTHING
      RETURNING version`,
    projectionVersion: `SELECT version FROM ${projections} WHERE id = $1`,
    initProjection: `INSERT INTO ${projections} (id, version) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING`,
    // Never past the log's head: a projection cannot have processed versions
    // that do not exist. Refused, nothing is written (the caller learns why
    // from projectionState).
    setProjection: `UPDATE ${projections} SET version = $2::bigint
      WHERE id = $1 AND $2::bigint <= (SELECT coalesce(max(version), 0) FROM ${table})
      RETURNING id`,
    projectionState: `SELECT (SELECT coalesce(max(version), 0) FROM ${table}) AS version,
      EXISTS (SELECT 1 FROM ${projections} WHERE id = $1) AS found`
  }
}

/** @internal */
export interface Resolved {
  readonly table: string
  readonly projectionTable: string
  readonly channel: string
  readonly revisionVcs: string
  readonly payloads: Readonly<Record<string, Schema.Schema<any, any, never>>>
  readonly queries: Queries
}

/** @internal */
export const resolve = (options: EventLog.Options): Effect.Effect<Resolved, InvalidConfig> =>
  Effect.gen(function*() {
    // Its triggers' names must fit too.
    const table = yield* checkName("table", options.table ?? "event_log", maxIdentifierBytes - longestTriggerSuffix)
    if (options.projectionTable === undefined && table.length + projectionSuffix.length > maxIdentifierBytes) {
      return yield* new InvalidConfig({
        field: "table",
        reason: `the default projection table (the table name + "${projectionSuffix}") would exceed PostgreSQL's ` +
          `${maxIdentifierBytes}-byte identifier limit: use at most ${
            maxIdentifierBytes - projectionSuffix.length
          } bytes, or set projectionTable`
      })
    }
    const projectionTable = yield* checkName(
      "projectionTable",
      options.projectionTable ?? `${table}${projectionSuffix}`,
      maxIdentifierBytes
    )
    if (projectionTable === table) {
      return yield* new InvalidConfig({ field: "projectionTable", reason: "must differ from table" })
    }
    const channel = yield* checkName("channel", options.channel ?? table, maxIdentifierBytes)
    const revisionVcs = yield* Either.match(Schema.decodeUnknownEither(RevisionVcs)(options.revisionVcs ?? ""), {
      onLeft: () => Effect.fail(new InvalidConfig({ field: "revisionVcs", reason: revisionVcsRule })),
      onRight: Effect.succeed
    })
    const payloads = options.payloads ?? {}
    for (const typeName of Object.keys(payloads)) {
      if (Either.isLeft(Schema.decodeUnknownEither(TypeName)(typeName))) {
        return yield* new InvalidConfig({ field: "payloads", reason: `every key is a type name that ${typeNameRule}` })
      }
    }
    return {
      table,
      projectionTable,
      channel,
      revisionVcs,
      payloads,
      queries: queriesFor(table, projectionTable, channel)
    }
  })

// -----------------------------------------------------------------------------
// Inputs
// -----------------------------------------------------------------------------

/** @internal */
export const maxTypeNameLength = 256

/** @internal */
export const maxRevisionVcsLength = 256

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Why PostgreSQL would not store a string unchanged (text and jsonb alike), if it would not. */
const textProblem = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains U+0000, which PostgreSQL text and jsonb cannot hold"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate, which is not Unicode text (it would be stored as U+FFFD or refused)"
    : undefined

/** A reason that replaces Schema's (which quotes the value: a payload may hold secrets). */
const rule = (message: string) => ({ message: () => ({ message, override: true }) })

const typeNameRule = `must be 1 to ${maxTypeNameLength} characters, without U+0000 or lone surrogates`

const TypeName = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(maxTypeNameLength),
  Schema.filter((text) => textProblem(text) === undefined),
  Schema.annotations(rule(typeNameRule))
)

const revisionVcsRule = `must be a string of at most ${maxRevisionVcsLength} characters, without U+0000 or lone surrogates`

const RevisionVcs = Schema.String.pipe(
  Schema.maxLength(maxRevisionVcsLength),
  Schema.filter((text) => textProblem(text) === undefined),
  Schema.annotations(rule(revisionVcsRule))
)

const countRule = (minimum: number) => `must be an integer from ${minimum} to 2^53 - 1`

/** Versions are `bigint` in the table, and exact in JavaScript up to 2^53 - 1. */
const VersionInput = Schema.Int.pipe(
  Schema.between(0, Number.MAX_SAFE_INTEGER),
  Schema.annotations(rule(countRule(0)))
)

/** Projection ids are `integer` (the seed's int32). */
const ProjectionId = Schema.Int.pipe(
  Schema.between(-2147483648, 2147483647),
  Schema.annotations(rule("must be an integer from -2^31 to 2^31 - 1 (int32)"))
)

const Count = (minimum: number) =>
  Schema.Int.pipe(
    Schema.between(minimum, Number.MAX_SAFE_INTEGER),
    Schema.annotations(rule(countRule(minimum)))
  )

/** An optional field: `undefined` or the schema, refused with the schema's own rule. */
const optionalOf = <S extends Schema.Schema.Any>(schema: S, message: string) =>
  Schema.optional(Schema.UndefinedOr(schema).annotations(rule(message)))

const booleanRule = "must be a boolean"

/** A struct's rule is used only when the value is not an object; its fields keep theirs. */
const shape = (message: string) => ({ message: () => message })

const NewEventInput = Schema.Struct({
  typeName: TypeName,
  payload: Schema.Unknown,
  revisionVcs: optionalOf(RevisionVcs, revisionVcsRule)
}).annotations(shape("must be an object { typeName, payload, revisionVcs? }"))

const ReadEventsInput = Schema.Struct({
  atVersion: VersionInput,
  reverse: optionalOf(Schema.Boolean, booleanRule),
  limit: Count(0)
}).annotations(shape("must be an object { atVersion, limit, reverse? }"))

const StreamInput = Schema.Struct({
  atVersion: optionalOf(VersionInput, countRule(0)),
  reverse: optionalOf(Schema.Boolean, booleanRule),
  pageSize: optionalOf(Count(1), countRule(1))
}).annotations(shape("must be an object"))

const ListenInput = Schema.Struct({
  from: optionalOf(VersionInput, countRule(0)),
  mode: optionalOf(Schema.Literal("notify", "poll"), "must be \"notify\" or \"poll\"")
}).annotations(shape("must be an object"))

/**
 * Decodes one argument; a refusal names it (with the path inside it, for
 * options) and never quotes the value.
 */
const checked = <A, I>(operation: string, argument: string, schema: Schema.Schema<A, I, never>) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first" })
  return (value: unknown): Effect.Effect<A, InvalidInput> =>
    Either.match(decode(value), {
      onRight: Effect.succeed,
      onLeft: (error) => {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
        const path = issue?.path.map((key) => `.${String(key)}`).join("") ?? ""
        return Effect.fail(
          new InvalidInput({
            operation,
            argument: `${argument}${path}`,
            reason: issue === undefined || issue._tag === "Missing" ? "is missing" : issue.message
          })
        )
      }
    })
}

// -----------------------------------------------------------------------------
// Rows
// -----------------------------------------------------------------------------

/** int8 arrives as a string from pg unless the pool parses it. */
const Version = Schema.Union(Schema.Number, Schema.NumberFromString)

const Row = Schema.Struct({
  version: Version,
  type_name: Schema.String,
  payload: Schema.Unknown,
  time: Schema.Union(Schema.DateFromSelf, Schema.Date),
  revision_vcs: Schema.String
})

const decodeRow = Schema.decodeUnknown(Row)

const versionOf = (rows: ReadonlyArray<{ readonly version: unknown }>): number => Number(rows[0]?.version ?? 0)

/**
 * Where a payload Schema refused, and what it expected, without Schema's
 * "actual …" part: a payload may hold secrets, and errors are logged.
 */
const schemaRefusal = (error: ParseResult.ParseError): JsonProblem => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const path = (issue?.path ?? []).reduce<string>(
    (at, key) => typeof key === "number" ? `${at}[${key}]` : keyPath(at, String(key)),
    "$"
  )
  const expected = issue === undefined ? "" : `: ${issue.message.replace(/, actual [\s\S]*$/, "")}`
  return { path, reason: `its payload Schema refused it${expected}` }
}

const decodeEvent = (config: Resolved) => (raw: unknown): Effect.Effect<EventLog.Event, InvalidEvent> =>
  Effect.gen(function*() {
    const row = yield* decodeRow(raw).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: "?", reason: cause.message, cause }))
    )
    const schema = config.payloads[row.type_name]
    const payload = schema === undefined ? row.payload : yield* Schema.decodeUnknown(schema)(row.payload).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: row.type_name, version: row.version, ...schemaRefusal(cause), cause }))
    )
    return Data.struct({
      version: row.version,
      typeName: row.type_name,
      payload,
      time: row.time,
      revisionVcs: row.revision_vcs
    })
  })

/** @internal */
export const RawJsonTypeId: EventLog.RawJsonTypeId = Symbol.for("effect-sql-router/EventLog/RawJson") as EventLog.RawJsonTypeId

/** @internal */
export const rawJson = (text: string): EventLog.RawJson => ({ [RawJsonTypeId]: RawJsonTypeId, text })

/** @internal */
export const isRawJson = (value: unknown): value is EventLog.RawJson =>
  typeof value === "object" && value !== null && RawJsonTypeId in value

/**
 * Deeper payloads are refused: far beyond any event's needs, and well within
 * what PostgreSQL's jsonb parser and this checker's recursion accept.
 * @internal
 */
export const maxPayloadDepth = 1000

/** @internal */
export interface JsonProblem {
  /** `$`, then `.key` or `["key"]` and `[index]`. */
  readonly path: string
  readonly reason: string
}

const plainKey = /^[A-Za-z_$][A-Za-z0-9_$]*$/

const keyPath = (path: string, key: string) =>
  plainKey.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`

const kindOf = (value: object): string => {
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name
  return typeof name === "string" && name !== "" && name !== "Object" ? `a ${name}` : "an object with a custom prototype"
}

/**
 * Why `value` would not come back from `jsonb` as it went in, if it would
 * not: the first offending place and what is there. Accepted: null,
 * booleans, finite numbers, strings PostgreSQL can hold, arrays without holes
 * and plain objects (prototype `Object.prototype` or null) of those, without
 * cycles. Everything `JSON.stringify` would throw on (bigint, cycles), drop
 * (undefined, functions and symbols as properties, symbol keys) or change
 * (NaN and ±Infinity to null, a Date to a string, a Map to `{}`) is refused.
 * Reasons describe the value's kind, never its content.
 * @internal
 */
export const jsonProblem = (payload: unknown): JsonProblem | undefined => {
  const ancestors: Array<{ readonly value: object; readonly path: string }> = []
  const visit = (value: unknown, path: string): JsonProblem | undefined => {
    switch (typeof value) {
      case "boolean":
        return undefined
      case "string": {
        const problem = textProblem(value)
        return problem === undefined ? undefined : { path, reason: `a string that ${problem}` }
      }
      case "number":
        return Number.isFinite(value)
          ? undefined
          : { path, reason: "a number that is not finite (NaN, ±Infinity, or beyond the double range): JSON has none" }
      case "bigint":
        return {
          path,
          reason: "a bigint, which JSON cannot hold: convert it (to a string or number), or give the type a payload Schema " +
            "that encodes it (Schema.BigInt)"
        }
      case "undefined":
        return {
          path,
          reason: "undefined, which JSON cannot hold (JSON.stringify would drop the property or write null): " +
            "omit the property or use null"
        }
      case "function":
        return { path, reason: "a function, which JSON cannot hold" }
      case "symbol":
        return { path, reason: "a symbol, which JSON cannot hold" }
      case "object": {
        if (value === null) return undefined
        const cycle = ancestors.find((ancestor) => ancestor.value === value)
        if (cycle !== undefined) return { path, reason: `a circular reference (to ${cycle.path}), which JSON cannot hold` }
        if (ancestors.length >= maxPayloadDepth) {
          return { path, reason: `nesting deeper than ${maxPayloadDepth} levels` }
        }
        ancestors.push({ value, path })
        const problem = Array.isArray(value) ? visitArray(value, path) : visitObject(value, path)
        ancestors.pop()
        return problem
      }
    }
  }
  const visitArray = (array: ReadonlyArray<unknown>, path: string): JsonProblem | undefined => {
    for (let i = 0; i < array.length; i++) {
      if (!(i in array)) return { path: `${path}[${i}]`, reason: "an empty array slot (JSON.stringify would write null)" }
      const problem = visit(array[i], `${path}[${i}]`)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  const visitObject = (object: object, path: string): JsonProblem | undefined => {
    const prototype = Object.getPrototypeOf(object)
    if (prototype !== Object.prototype && prototype !== null) {
      return {
        path,
        reason: `${kindOf(object)}, not a plain object: JSON would not keep it as it is; convert it, or give the type ` +
          "a payload Schema that encodes it (e.g. Schema.Date)"
      }
    }
    if (Object.getOwnPropertySymbols(object).length > 0) {
      return { path, reason: "an object with symbol keys, which JSON.stringify would drop" }
    }
    for (const key of Object.keys(object)) {
      const at = keyPath(path, key)
      const keyProblem = textProblem(key)
      if (keyProblem !== undefined) return { path: at, reason: `a key that ${keyProblem}` }
      const problem = visit((object as Record<string, unknown>)[key], at)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  return visit(payload, "$")
}

/** The JSON text of a value that passed `jsonProblem` (so `JSON.stringify` cannot throw or drop anything). */
const jsonText = (typeName: string, value: unknown): Effect.Effect<string, InvalidEvent> =>
  Effect.suspend(() => {
    const problem = jsonProblem(value)
    return problem === undefined
      ? Effect.succeed(JSON.stringify(value))
      : Effect.fail(new InvalidEvent({ typeName, path: problem.path, reason: problem.reason }))
  }).pipe(
    // A getter that throws, a Proxy that refuses: the payload cannot be read.
    Effect.catchAllDefect((cause) =>
      Effect.fail(new InvalidEvent({ typeName, path: "$", reason: "reading the payload threw", cause }))
    )
  )

/**
 * Raw JSON text is stored as it is (jsonb normalises whitespace and key
 * order), once it parses, holds only what `jsonProblem` accepts, and, when
 * the type has a payload Schema, decodes with it (the text is the encoded
 * form).
 */
const rawJsonText = (config: Resolved, typeName: string, raw: EventLog.RawJson): Effect.Effect<string, InvalidEvent> =>
  Effect.gen(function*() {
    const text: unknown = raw.text
    if (typeof text !== "string") {
      return yield* new InvalidEvent({ typeName, path: "$", reason: "EventLog.rawJson needs a string" })
    }
    const parsed = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      // The parser's message quotes the text: keep it out of the reason.
      catch: (cause) => new InvalidEvent({ typeName, path: "$", reason: "the raw text is not valid JSON", cause })
    })
    yield* jsonText(typeName, parsed)
    const schema = config.payloads[typeName]
    if (schema !== undefined) {
      yield* Schema.decodeUnknown(schema)(parsed).pipe(
        Effect.mapError((cause) => new InvalidEvent({ typeName, ...schemaRefusal(cause), cause }))
      )
    }
    return text
  })

const encodePayload = (config: Resolved, event: { readonly typeName: string; readonly payload: unknown }) => {
  if (isRawJson(event.payload)) return rawJsonText(config, event.typeName, event.payload)
  const schema = config.payloads[event.typeName]
  const encoded = schema === undefined
    ? Effect.succeed(event.payload)
    : Schema.encodeUnknown(schema)(event.payload).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: event.typeName, ...schemaRefusal(cause), cause }))
    )
  return Effect.flatMap(encoded, (payload) => jsonText(event.typeName, payload))
}

// -----------------------------------------------------------------------------
// Reader and Writer over the transaction's SqlClient
// -----------------------------------------------------------------------------

/**
 * Whether the transaction that gave out a Reader or Writer still runs. Its
 * statements go through the fiber's current transaction connection: after
 * the body, that would be an autocommit on the node, so they are refused.
 */
interface TransactionState {
  open: boolean
}

/** Refuses when the transaction is over, then validates, then runs. */
const operation = <Args extends ReadonlyArray<unknown>, A, E>(
  state: TransactionState,
  name: string,
  run: (...args: Args) => Effect.Effect<A, E>
) =>
(...args: Args): Effect.Effect<A, E | TransactionClosed> =>
  Effect.suspend((): Effect.Effect<A, E | TransactionClosed> =>
    state.open ? run(...args) : Effect.fail(new TransactionClosed({ operation: name }))
  )

const inputs = {
  eventAtVersion: checked("eventAtVersion", "version", VersionInput),
  eventAfterVersion: checked("eventAfterVersion", "version", VersionInput),
  projectionVersion: checked("projectionVersion", "id", ProjectionId),
  events: checked("events", "options", ReadEventsInput),
  initProjectionVersion: checked("initProjectionVersion", "id", ProjectionId),
  setProjectionId: checked("setProjectionVersion", "id", ProjectionId),
  setProjectionVersion: checked("setProjectionVersion", "version", VersionInput),
  assumedVersion: checked("appendEvent", "assumedVersion", VersionInput),
  event: checked("appendEvent", "event", NewEventInput),
  stream: checked("stream", "options", StreamInput),
  listen: checked("listen", "options", ListenInput)
}

const makeReader = (config: Resolved, sql: SqlClient.SqlClient, state: TransactionState): EventLog.Reader => {
  const q = config.queries
  const decode = decodeEvent(config)
  const one = (text: string, version: number) =>
    Effect.flatMap(sql.unsafe(text, [version]), (rows) =>
      rows.length === 0 ? Effect.succeed(Option.none()) : Effect.map(decode(rows[0]), Option.some))
  return {
    [ReaderTypeId]: ReaderTypeId,
    systemVersion: operation(state, "systemVersion", () =>
      Effect.map(sql.unsafe<{ version: unknown }>(q.systemVersion), versionOf))(),
    eventAtVersion: operation(state, "eventAtVersion", (version: number) =>
      Effect.flatMap(inputs.eventAtVersion(version), (version) => one(q.eventAt, version))),
    eventAfterVersion: operation(state, "eventAfterVersion", (version: number) =>
      Effect.flatMap(inputs.eventAfterVersion(version), (version) => one(q.eventAfter, version))),
    events: operation(state, "events", (options: EventLog.ReadEventsOptions) =>
      Effect.flatMap(inputs.events(options), ({ atVersion, limit, reverse }) =>
        Effect.flatMap(
          sql.unsafe(reverse === true ? q.eventsReverse : q.eventsForward, [atVersion, limit]),
          (rows) => Effect.forEach(rows, decode)
        ))),
    projectionVersion: operation(state, "projectionVersion", (id: number) =>
      Effect.flatMap(inputs.projectionVersion(id), (id) =>
        Effect.flatMap(sql.unsafe<{ version: unknown }>(q.projectionVersion, [id]), (rows) =>
          rows.length === 0 ? Effect.fail(new ProjectionNotFound({ id })) : Effect.succeed(versionOf(rows)))))
  }
}

const makeReadWrite = (
  config: Resolved,
  sql: SqlClient.SqlClient,
  state: TransactionState
): EventLog.Reader & EventLog.Writer => {
  const q = config.queries
  const reader = makeReader(config, sql, state)
  return {
    ...reader,
    [WriterTypeId]: WriterTypeId,
    appendEvent: operation(state, "appendEvent", (assumedVersion: number, event: EventLog.NewEvent) =>
      Effect.gen(function*() {
        const assumed = yield* inputs.assumedVersion(assumedVersion)
        const valid = yield* inputs.event(event)
        // Everything is checked before the first statement: a refused event
        // leaves the transaction as it was.
        const payload = yield* encodePayload(config, valid)
        const inserted = yield* sql.unsafe<{ version: unknown }>(q.append, [
          assumed,
          valid.typeName,
          payload,
          valid.revisionVcs ?? config.revisionVcs
        ])
        if (inserted.length > 0) return versionOf(inserted)
        // A new statement, so a new snapshot: it sees the appender that won.
        const actual = yield* reader.systemVersion
        return yield* new VersionMismatch({ assumed, actual })
      })),
    initProjectionVersion: operation(state, "initProjectionVersion", (id: number) =>
      Effect.flatMap(inputs.initProjectionVersion(id), (id) =>
        Effect.zipRight(
          sql.unsafe(q.initProjection, [id]),
          Effect.map(sql.unsafe<{ version: unknown }>(q.projectionVersion, [id]), versionOf)
        ))),
    setProjectionVersion: operation(state, "setProjectionVersion", (id: number, version: number) =>
      Effect.gen(function*() {
        const validId = yield* inputs.setProjectionId(id)
        const validVersion = yield* inputs.setProjectionVersion(version)
        const updated = yield* sql.unsafe(q.setProjection, [validId, validVersion])
        if (updated.length > 0) return
        const [current] = yield* sql.unsafe<{ version: unknown; found: boolean }>(q.projectionState, [validId])
        if (current?.found !== true) return yield* new ProjectionNotFound({ id: validId })
        return yield* new InvalidInput({
          operation: "setProjectionVersion",
          argument: "version",
          reason: `is beyond the log's system version (${versionOf([current])}): a projection cannot have processed ` +
            "events that do not exist"
        })
      }))
  }
}

// -----------------------------------------------------------------------------
// Transactions
// -----------------------------------------------------------------------------

/**
 * The WAL position this read's snapshot is at most: a replica's replay
 * position, the primary's insert position. This is the transaction's first
 * snapshot-taking statement, and the position is read while it runs, after
 * its snapshot was taken, so every commit the snapshot sees lies below it.
 * (A standby publishes its replay position just after applying a record: a
 * snapshot taken in that instant may see one commit past the position read.)
 */
const positionQuery = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
  ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::text AS lsn`

/**
 * Monotonic reads: in a causal session, the session's position rises to what
 * this read saw, so its next read goes only where that is replayed.
 */
const raiseSessionPosition = (sql: SqlClient.SqlClient) =>
  Effect.flatMap(Effect.serviceOption(Consistency.Session), (session) =>
    Option.isNone(session) ? Effect.void : Effect.flatMap(sql.unsafe<{ lsn: string | null }>(positionQuery), (rows) => {
      const text = rows[0]?.lsn
      if (text === undefined || text === null) return Effect.void
      const seen = BigInt(text)
      return Ref.update(session.value, (state) =>
        state.lsn !== undefined && state.lsn >= seen ? state : { ...state, lsn: seen })
    }))

const repeatableRead = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"

/** @internal */
export const make = (options: EventLog.Options = {}): Effect.Effect<
  EventLog.EventLog,
  InvalidConfig | EventLog.WriteError,
  SqlRouter.SqlRouter
> =>
  Effect.gen(function*() {
    const config = yield* resolve(options)
    const router = yield* SqlRouter.SqlRouter

    const readOnly: EventLog.EventLog["readOnly"] = <A, E, R>(
      body: (reader: EventLog.Reader) => EventLog.ReadOnlyBody<A, E, R>
    ) =>
      Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (outer) =>
        router.readTransaction(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // Nested in a transaction that has run statements already, the
          // isolation level is that transaction's.
          if (Option.isNone(outer)) yield* sql.unsafe(repeatableRead)
          yield* raiseSessionPosition(sql)
          const state: TransactionState = { open: true }
          const reader = makeReader(config, sql, state)
          // ReadOnlyBody is the effect itself whenever the call compiled.
          const effect = Effect.suspend(() => body(reader) as Effect.Effect<A, E, R>)
          return yield* Effect.provideService(effect, ReaderTag, reader).pipe(
            Effect.ensuring(Effect.sync(() => state.open = false))
          )
        }))) as Effect.Effect<A, E | EventLog.ReadError, Exclude<R, EventLog.Reader | EventLog.Provided>>

    const readWrite: EventLog.EventLog["readWrite"] = <A, E, R>(
      body: (tx: EventLog.Reader & EventLog.Writer) => Effect.Effect<A, E, R>
    ) =>
      onPrimary(router.transaction(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const state: TransactionState = { open: true }
        const tx = makeReadWrite(config, sql, state)
        return yield* Effect.suspend(() => body(tx)).pipe(
          Effect.provideService(ReaderTag, tx),
          Effect.provideService(WriterTag, tx),
          Effect.ensuring(Effect.sync(() => state.open = false))
        )
      }))) as Effect.Effect<A, E | EventLog.WriteError, Exclude<R, EventLog.Reader | EventLog.Writer | EventLog.Provided>>

    /**
     * A connection failure on the primary (it is down, restarting, or the
     * link broke) before COMMIT is the router's `PrimaryUnavailable`: the
     * transaction did not commit. A failure during COMMIT stays `CommitFailed`.
     */
    const onPrimary = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | PrimaryUnavailable, R> =>
      Effect.catchIf(
        effect,
        (error) => error instanceof SqlError && isConnectionError(error),
        (error) =>
          Effect.flatMap(router.primary, (node) =>
            Effect.fail(
              new PrimaryUnavailable({
                node: node.id,
                reason: `${describe(error)}; the transaction was not committed`,
                cause: error
              })
            ))
      )

    const migrate = onPrimary(router.transaction(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach(config.queries.migrate, (text) => sql.unsafe(text), { discard: true }))))

    const primaryVersion = router.withPrimary(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(sql.unsafe<{ version: unknown }>(config.queries.systemVersion), versionOf))
    )

    const stream = (streamOptions: EventLog.StreamOptions = {}) =>
      Stream.unwrap(Effect.map(inputs.stream(streamOptions), (valid) => pages(valid)))

    const pages = (streamOptions: EventLog.StreamOptions) => {
      const reverse = streamOptions.reverse === true
      const pageSize = streamOptions.pageSize ?? 1000
      const start = streamOptions.atVersion ?? (reverse ? Number.MAX_SAFE_INTEGER : 1)
      // The options were checked and the reader is used in its own body.
      const pageAt = (reader: EventLog.Reader, atVersion: number) =>
        reader.events({ atVersion, reverse, limit: pageSize }).pipe(
          Effect.catchTags({ InvalidInput: Effect.die, TransactionClosed: Effect.die })
        )
      return Stream.paginateChunkEffect(start, (atVersion) =>
        Effect.map(readOnly((reader) => pageAt(reader, atVersion)), (events) => {
          const last = events[events.length - 1]
          const next = last === undefined || events.length < pageSize
            ? Option.none<number>()
            : Option.some(reverse ? last.version - 1 : last.version + 1)
          return [Chunk.unsafeFromArray(events), Option.filter(next, (v) => v >= 1)] as const
        }))
    }

    const listen = (listenOptions: EventLog.ListenOptions = {}) =>
      Stream.unwrap(Effect.map(inputs.listen(listenOptions), () =>
        listenStream(config, primaryVersion, listenOptions).pipe(Stream.provideService(SqlRouter.SqlRouter, router))))

    const service: EventLog.EventLog = {
      table: config.table,
      projectionTable: config.projectionTable,
      channel: config.channel,
      readOnly,
      readWrite,
      migrate,
      stream,
      listen
    }
    if (options.migrate !== false) yield* migrate
    return service
  })

// -----------------------------------------------------------------------------
// Listener
// -----------------------------------------------------------------------------

/** @internal */
export const ready: EventLog.Ready = Data.struct({ _tag: "Ready" as const })

/** @internal */
export const inserted = (version: number): EventLog.Inserted => Data.struct({ _tag: "Inserted" as const, version })

/** What the follower learns: the log's version now (a snapshot or a poll), or one notified version. */
type Signal =
  | { readonly _tag: "At"; readonly version: number }
  | { readonly _tag: "Notified"; readonly version: number }
  | { readonly _tag: "Lost"; readonly reason: string }

/**
 * Turns signals into `Ready` and every version once, in order. Versions are
 * gapless, so "the log is at v" means "v and everything below exist": what was
 * missed while disconnected is the range up to the next snapshot, and a
 * notification replayed after a snapshot is at or below what was emitted.
 */
const follower = (from: number | undefined) => {
  let emitted = from
  let isReady = false
  return (signal: Signal): ReadonlyArray<EventLog.ListenEvent> => {
    const out: Array<EventLog.ListenEvent> = []
    if (signal._tag === "Lost") return out
    if (!isReady && signal._tag === "At") {
      isReady = true
      out.push(ready)
    }
    if (!isReady) return out
    if (emitted === undefined) {
      emitted = signal.version
      return out
    }
    for (let v = emitted + 1; v <= signal.version; v++) out.push(inserted(v))
    if (signal.version > emitted) emitted = signal.version
    return out
  }
}

const reasonOf = (cause: Cause.Cause<unknown>): string => {
  if (Cause.isEmpty(cause)) return "the connection ended"
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

const listenStream = (
  config: Resolved,
  version: Effect.Effect<number, SqlError | CommitFailed | PrimaryUnavailable | ReplicaNotCaughtUp>,
  options: EventLog.ListenOptions
): Stream.Stream<EventLog.ListenEvent, never, SqlRouter.SqlRouter> =>
  Stream.suspend(() => {
    const step = follower(options.from)
    const polled: Stream.Stream<Signal> = Stream.repeatEffectWithSchedule(
      Effect.match(version, {
        onFailure: (error): Signal => ({ _tag: "Lost", reason: error.message }),
        onSuccess: (version): Signal => ({ _tag: "At", version })
      }),
      Schedule.spaced(options.pollInterval ?? "1 second")
    )
    if (options.mode === "poll") return follow(config, polled, step)
    const notified: Stream.Stream<Signal, never, SqlRouter.SqlRouter> = Durable.subscribe({
      updates: Durable.notifications(config.channel, { applicationName: options.applicationName }),
      state: version,
      resubscribeDelay: options.resubscribeDelay ?? "1 second"
    }).pipe(Stream.filterMap(Durable.match({
      onConnectionSuccess: () => Option.none<Signal>(),
      onConnectionLost: (cause) => Option.some<Signal>({ _tag: "Lost", reason: reasonOf(cause) }),
      onState: (version) => Option.some<Signal>({ _tag: "At", version }),
      onUpdate: (payload) => {
        const version = Number(payload)
        return Number.isSafeInteger(version) ? Option.some<Signal>({ _tag: "Notified", version }) : Option.none()
      }
    })))
    // A poll beside LISTEN catches up where notifications never arrive
    // (LISTEN through a transaction pooler "works" but delivers nothing).
    return follow(config, options.pollInterval === undefined ? notified : Stream.merge(notified, polled), step)
  })

const follow = <R>(
  config: Resolved,
  signals: Stream.Stream<Signal, never, R>,
  step: (signal: Signal) => ReadonlyArray<EventLog.ListenEvent>
): Stream.Stream<EventLog.ListenEvent, never, R> =>
  signals.pipe(
    Stream.tap((signal) =>
      signal._tag === "Lost" ? Effect.logWarning(`event log listener on ${config.channel}: ${signal.reason}`) : Effect.void
    ),
    Stream.mapConcat(step)
  )

/** @internal */
export const streamFromContext = (options?: EventLog.StreamOptions) =>
  Stream.unwrap(Effect.map(EventLogTag, (log) => log.stream(options)))

/** @internal */
export const listenFromContext = (options?: EventLog.ListenOptions) =>
  Stream.unwrap(Effect.map(EventLogTag, (log) => log.listen(options)))

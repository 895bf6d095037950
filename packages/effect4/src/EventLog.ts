/**
 * The Conductor's event log on the router: an immutable, gapless log of
 * events with optimistic appends, projection versions, and a durable
 * listener. The read/write intent is in the types: `readOnly` gives a
 * `Reader` and runs on a replica in one snapshot (the primary when no replica
 * is eligible, as the router does), `readWrite` gives a `Reader & Writer` in
 * one primary transaction. An effect that needs `Writer` does not compile
 * inside `readOnly`.
 *
 * Consistency comes from the router's causal sessions (`Consistency.session`,
 * tokens): after an append, a session's `readOnly` sees it even when replicas
 * lag, and every `readOnly` raises the session's position to what it saw, so
 * a projection that follows the log never sees the system version go back
 * when its reads move between replicas.
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/eventLog.js"
import * as errors from "./internal/eventLog/errors.js"
import * as listener from "./internal/eventLog/listen.js"
import * as payload from "./internal/eventLog/payload.js"
import type { CommitFailed, InvalidConfig, PrimaryUnavailable, ReplicaNotCaughtUp } from "./RouterError.js"
import type * as SqlRouter from "./SqlRouter.js"

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

/**
 * `appendEvent` found the log somewhere else than `assumed`: another writer
 * appended first (or the caller's view is stale). `actual` is the system
 * version the append saw after it lost. The transaction's other work is still
 * in progress; failing `readWrite` with this error rolls it all back.
 *
 * @since 0.1.0
 * @category errors
 */
export const VersionMismatch: typeof errors.VersionMismatch = errors.VersionMismatch

/**
 * The type of a {@link VersionMismatch} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type VersionMismatch = errors.VersionMismatch

/**
 * `projectionVersion` or `setProjectionVersion` of an id that
 * `initProjectionVersion` never created.
 *
 * @since 0.1.0
 * @category errors
 */
export const ProjectionNotFound: typeof errors.ProjectionNotFound = errors.ProjectionNotFound

/**
 * The type of a {@link ProjectionNotFound} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type ProjectionNotFound = errors.ProjectionNotFound

/**
 * A payload that cannot be stored as it is, or that its type's Schema
 * rejects: on append (nothing was written, and the transaction can go on) or
 * on read (`version` says which event). `path` says where inside the payload
 * (`$` is the payload, then `.key`, `["odd key"]` and `[index]`); `reason`
 * says what is there and why it cannot be stored (a bigint, a circular
 * reference, `undefined`, a function, a symbol, NaN or ±Infinity, a Date or
 * other non-plain object, a string PostgreSQL cannot hold, raw text that is
 * not JSON). Reasons describe a value's kind, never its content.
 *
 * @since 0.1.0
 * @category errors
 */
export const InvalidEvent: typeof errors.InvalidEvent = errors.InvalidEvent

/**
 * The type of an {@link InvalidEvent} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type InvalidEvent = errors.InvalidEvent

/**
 * An argument of a Reader, Writer or stream operation that cannot work,
 * found before any statement runs (nothing was written; the transaction can
 * go on). `operation` is the method (`appendEvent`), `argument` the
 * parameter, with the path inside it for options (`options.limit`,
 * `event.typeName`), and `reason` the rule it breaks, without quoting the
 * value. The rules: versions are integers from 0 to 2^53 - 1; projection ids
 * are int32; `limit` is a non-negative integer and `pageSize` a positive
 * one; a type name is 1 to 256 characters and a VCS revision at most 256,
 * neither with U+0000 or a lone surrogate; `setProjectionVersion` never sets
 * a version beyond the log's system version. The payload has its own error,
 * {@link InvalidEvent}.
 *
 * @since 0.1.0
 * @category errors
 */
export const InvalidInput: typeof errors.InvalidInput = errors.InvalidInput

/**
 * The type of an {@link InvalidInput} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type InvalidInput = errors.InvalidInput

/**
 * A Reader or Writer used after the `readOnly` or `readWrite` body that gave
 * it ended (it was captured and called later). Nothing was run: its
 * statements would otherwise run outside any transaction, as autocommits.
 * `operation` names the method.
 *
 * @since 0.1.0
 * @category errors
 */
export const TransactionClosed: typeof errors.TransactionClosed = errors.TransactionClosed

/**
 * The type of a {@link TransactionClosed} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type TransactionClosed = errors.TransactionClosed

/**
 * What every Reader and Writer operation can fail with besides its own
 * errors: a bad argument, or a transaction that has ended.
 *
 * @since 0.1.0
 * @category errors
 */
export type UsageError = InvalidInput | TransactionClosed

/**
 * What `readOnly` adds to the body's failures.
 *
 * @since 0.1.0
 * @category errors
 */
export type ReadError = SqlError | CommitFailed | ReplicaNotCaughtUp

/**
 * What `readWrite` adds to the body's failures. A primary that cannot be
 * reached, or whose connection breaks before COMMIT, is `PrimaryUnavailable`
 * (nothing was committed); a refused or interrupted COMMIT is `CommitFailed`.
 *
 * @since 0.1.0
 * @category errors
 */
export type WriteError = SqlError | CommitFailed | PrimaryUnavailable

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * What a transaction provides to its body besides the reader and writer: the
 * `SqlClient` (and `PgClient`) of the transaction's node, so that the body's
 * own statements run in the same transaction.
 *
 * @since 0.1.0
 * @category models
 */
export type Provided = SqlClient.SqlClient | PgClient.PgClient

/**
 * One event of the log. `version` is its position (1, 2, 3, … without
 * gaps); `time` is when it was appended (the primary's clock); `revisionVcs`
 * the version-control revision of the program that appended it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Event<P = unknown> {
  readonly version: number
  readonly typeName: string
  /** The decoded payload: through the type's Schema when `Options.payloads` has one, else the JSON value. */
  readonly payload: P
  readonly time: Date
  readonly revisionVcs: string
}

/**
 * An event to append; the log gives it its version and time.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewEvent {
  /** 1 to 256 characters, without U+0000 or lone surrogates. */
  readonly typeName: string
  /**
   * A JSON value, stored as `jsonb` and read back equal: null, booleans,
   * finite numbers, strings, arrays and plain objects of those (`-0` reads
   * back as `0`). Anything JSON would drop or change (an `undefined`
   * property, a function, a symbol, NaN, a bigint, a Date, a Map, a class
   * instance, a cycle) fails the append with {@link InvalidEvent} naming the
   * path. With a payload Schema for the type, the value is encoded with it
   * first, so a Date or bigint can be stored through `Schema.DateFromString` or
   * `Schema.BigIntFromString`.
   *
   * A string is a JSON string: `"{\"a\":1}"` is stored as the string
   * `"{\"a\":1}"`, not as an object. To store JSON text as the JSON it holds
   * (the Conductor's `Payload` is such text), wrap it: `EventLog.rawJson(text)`.
   */
  readonly payload: unknown
  /** At most 256 characters, without U+0000 or lone surrogates. Default: `Options.revisionVcs`. */
  readonly revisionVcs?: string | undefined
}

/**
 * Brands a {@link RawJson} payload.
 *
 * @since 0.1.0
 * @category symbols
 */
export const RawJsonTypeId: unique symbol = payload.RawJsonTypeId

/**
 * The type of {@link RawJsonTypeId}.
 *
 * @since 0.1.0
 * @category symbols
 */
export type RawJsonTypeId = typeof RawJsonTypeId

/**
 * A payload given as JSON text, made by {@link rawJson}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RawJson {
  readonly [RawJsonTypeId]: RawJsonTypeId
  readonly text: string
}

/**
 * Options of `Reader.events`: where to start, in which direction, and how many events.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadEventsOptions {
  /** The first version read (inclusive): an integer from 0 to 2^53 - 1. */
  readonly atVersion: number
  /** Newest first, from `atVersion` down. Default false. */
  readonly reverse?: boolean | undefined
  /** At most this many events: an integer from 0 to 2^53 - 1. */
  readonly limit: number
}

/**
 * Brands a `Reader`, so that `Exclude<R, Reader | Provided>` removes only the reader.
 *
 * @since 0.1.0
 * @category symbols
 */
export const ReaderTypeId: unique symbol = internal.ReaderTypeId

/**
 * The type of {@link ReaderTypeId}.
 *
 * @since 0.1.0
 * @category symbols
 */
export type ReaderTypeId = typeof ReaderTypeId

/**
 * Brands a `Writer`, so that `NoWriter` finds it and nothing else.
 *
 * @since 0.1.0
 * @category symbols
 */
export const WriterTypeId: unique symbol = internal.WriterTypeId

/**
 * The type of {@link WriterTypeId}.
 *
 * @since 0.1.0
 * @category symbols
 */
export type WriterTypeId = typeof WriterTypeId

/**
 * Reads of one transaction's snapshot (the seed's `Reader`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Reader {
  readonly [ReaderTypeId]: ReaderTypeId
  /** The event at `version`, if the log has it. */
  readonly eventAtVersion: (version: number) => Effect.Effect<Option.Option<Event>, SqlError | InvalidEvent | UsageError>
  /** The first event after `version` (so `eventAfterVersion(0)` is the first event). */
  readonly eventAfterVersion: (
    version: number
  ) => Effect.Effect<Option.Option<Event>, SqlError | InvalidEvent | UsageError>
  /** The version of the newest event; 0 for an empty log. */
  readonly systemVersion: Effect.Effect<number, SqlError | TransactionClosed>
  /** The version a projection has stored with `setProjectionVersion` (`id` is an int32). */
  readonly projectionVersion: (id: number) => Effect.Effect<number, SqlError | ProjectionNotFound | UsageError>
  /** A page of events from `atVersion`, oldest first (or newest first with `reverse`). */
  readonly events: (
    options: ReadEventsOptions
  ) => Effect.Effect<ReadonlyArray<Event>, SqlError | InvalidEvent | UsageError>
}

/**
 * Writes of a read-write transaction (the seed's `Writer`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Writer {
  readonly [WriterTypeId]: WriterTypeId
  /** Creates the projection's version at 0 unless it exists; returns its version. */
  readonly initProjectionVersion: (id: number) => Effect.Effect<number, SqlError | UsageError>
  /**
   * Records the version a projection has processed; `InvalidInput` (argument
   * `version`) when it is beyond the log's system version, and nothing is written.
   */
  readonly setProjectionVersion: (
    id: number,
    version: number
  ) => Effect.Effect<void, SqlError | ProjectionNotFound | UsageError>
  /**
   * Appends `event` as version `assumedVersion + 1` if the log is at
   * `assumedVersion`, else fails with `VersionMismatch`. Returns the new
   * version. Never retried: deciding again is the caller's business. The
   * arguments and the payload are checked before anything is sent:
   * `InvalidInput` or `InvalidEvent` leave the transaction as it was.
   */
  readonly appendEvent: (
    assumedVersion: number,
    event: NewEvent
  ) => Effect.Effect<number, VersionMismatch | InvalidEvent | SqlError | UsageError>
}

/**
 * A compile-time refusal: the body of `readOnly` needs `Writer`. A string
 * type, so that the compiler's first line says it: "Type 'Effect<…,
 * Writer>' is not assignable to type '"EventLog.readOnly: this effect needs
 * EventLog.Writer; use EventLog.readWrite"'".
 *
 * @since 0.1.0
 * @category models
 */
export type WriterNotAllowedInReadOnly = "EventLog.readOnly: this effect needs EventLog.Writer; use EventLog.readWrite"

/**
 * What the body of `readOnly` may return: the effect itself when `R` has no
 * `Writer`, otherwise {@link WriterNotAllowedInReadOnly}, which no effect is.
 *
 * @since 0.1.0
 * @category models
 */
export type ReadOnlyBody<A, E, R> = [Extract<R, Writer>] extends [never] ? Effect.Effect<A, E, R>
  : WriterNotAllowedInReadOnly

/**
 * The signal that the listener is listening: versions inserted from now on
 * are reported. Emitted once, first.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ready {
  readonly _tag: "Ready"
}

/**
 * A version that was appended, reported once and in order.
 *
 * @since 0.1.0
 * @category models
 */
export interface Inserted {
  readonly _tag: "Inserted"
  readonly version: number
}

/**
 * What `listen` emits: `Ready`, then `Inserted` for every version.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenEvent = Ready | Inserted

/**
 * Options of {@link listen}: the first version to report, LISTEN or polling, and retry delays.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /**
   * The last version already processed: every later one is reported, those
   * appended before `Ready` included: an integer from 0 to 2^53 - 1.
   * Default: the system version when the listener is first ready (only new
   * versions).
   */
  readonly from?: number | undefined
  /**
   * `notify` (default): LISTEN on the primary, through `Durable.subscribe`.
   * `poll`: ask the primary for the system version every `pollInterval`,
   * for where LISTEN does not work (a transaction pooler).
   */
  readonly mode?: "notify" | "poll" | undefined
  /**
   * How often `poll` mode asks; default 1 second. In `notify` mode, setting
   * it adds the same poll beside LISTEN, for where LISTEN seems to work but
   * delivers nothing (a transaction pooler): no version waits longer than
   * one interval.
   */
  readonly pollInterval?: Duration.Input | undefined
  /** After a lost connection; default 1 second. */
  readonly resubscribeDelay?: Duration.Input | undefined
  /** `application_name` of the LISTEN connection; default the router's, suffixed `-listen`. */
  readonly applicationName?: string | undefined
}

/**
 * Options of {@link stream}: where to start, in which direction, and the page size.
 *
 * @since 0.1.0
 * @category models
 */
export interface StreamOptions {
  /** An integer from 0 to 2^53 - 1. Default: 1, or the newest event with `reverse`. */
  readonly atVersion?: number | undefined
  readonly reverse?: boolean | undefined
  /** Events per read transaction, a positive integer; default 1000. */
  readonly pageSize?: number | undefined
}

/**
 * Options of {@link layer} and {@link make}: the table, the payload Schemas per type name, and the writer's VCS revision.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The events table; default `event_log`. A lower-case SQL identifier (a-z,
   * 0-9, `_`, not starting with a digit), always quoted, so reserved words
   * such as `order` work. At most 53 bytes, so that its triggers
   * (`<table>_notify`, `<table>_immutable`) fit PostgreSQL's 63-byte limit,
   * and at most 52 when `projectionTable` is derived from it.
   */
  readonly table?: string | undefined
  /** The projection-version table; default `<table>_projection`. Same rules, at most 63 bytes, not `table`. */
  readonly projectionTable?: string | undefined
  /** The NOTIFY channel the log's trigger signals; default the table name. Same rules, at most 63 bytes. */
  readonly channel?: string | undefined
  /** Stored with each append unless the event names its own. Default `""`; at most 256 characters. */
  readonly revisionVcs?: string | undefined
  /** A payload Schema per type name: appends encode with it, reads decode with it. */
  readonly payloads?: Readonly<Record<string, Schema.Codec<any, any, never, never>>> | undefined
  /** Run `migrate` when the service is built; default true. */
  readonly migrate?: boolean | undefined
}

/**
 * The event log service: read-only and read-write transactions, the listener and page streams.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventLog {
  readonly table: string
  readonly projectionTable: string
  readonly channel: string
  readonly readOnly: <A, E, R>(
    body: (reader: Reader) => ReadOnlyBody<A, E, R>
  ) => Effect.Effect<A, E | ReadError, Exclude<R, Reader | Provided>>
  readonly readWrite: <A, E, R>(
    body: (tx: Reader & Writer) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | WriteError, Exclude<R, Reader | Writer | Provided>>
  /** Creates the tables and triggers if they are missing (idempotent, serialised by an advisory lock). */
  readonly migrate: Effect.Effect<void, WriteError>
  readonly stream: (options?: StreamOptions) => Stream.Stream<Event, InvalidEvent | InvalidInput | ReadError>
  readonly listen: (options?: ListenOptions) => Stream.Stream<ListenEvent, InvalidInput>
}

// -----------------------------------------------------------------------------
// Tags and layers
// -----------------------------------------------------------------------------

/**
 * The event log service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const EventLog: Context.Service<EventLog, EventLog> = internal.EventLogTag

/**
 * The current read transaction's reader, for helpers that read the log
 * inside `readOnly` or `readWrite`.
 *
 * @since 0.1.0
 * @category tags
 */
export const Reader: Context.Service<Reader, Reader> = internal.ReaderTag

/**
 * The current read-write transaction's writer. Only `readWrite` provides it:
 * an effect that needs it does not compile inside `readOnly`.
 *
 * @since 0.1.0
 * @category tags
 */
export const Writer: Context.Service<Writer, Writer> = internal.WriterTag

/**
 * Builds the event log over the router; creates its tables unless
 * `migrate: false`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<EventLog, InvalidConfig | WriteError, SqlRouter.SqlRouter> = internal.make

/**
 * The event log as a Layer over `SqlRouter`.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { EventLog, SqlRouter } from "@effect-sql-router/effect4"
 *
 * const Live = EventLog.layer({ table: "orders_log" }).pipe(
 *   Layer.provideMerge(SqlRouter.layer({
 *     primary: Redacted.make("postgres://app@primary:5432/app"),
 *     replicas: [Redacted.make("postgres://app@replica:5432/app")]
 *   }))
 * )
 *
 * const version = EventLog.readOnly((reader) => reader.systemVersion)
 * // Run it with Effect.runPromise(main) next to real servers.
 * export const main = version.pipe(Effect.provide(Live))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<EventLog, InvalidConfig | WriteError, SqlRouter.SqlRouter> => Layer.effect(EventLog, make(options))

// -----------------------------------------------------------------------------
// Transactions
// -----------------------------------------------------------------------------

/**
 * Runs `body` in one read-only snapshot (`BEGIN READ ONLY`, repeatable read)
 * on a replica, or on the primary when no replica is eligible. `body` gets a
 * `Reader`, which is also in its context, and the transaction's `SqlClient`
 * (its own statements join the snapshot). An effect that needs `Writer` is a
 * type error here. In a causal session it sees the session's writes, and it
 * raises the session's position to what it saw (monotonic reads).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EventLog } from "@effect-sql-router/effect4"
 *
 * const latest = EventLog.readOnly((reader) =>
 *   Effect.flatMap(reader.systemVersion, (version) => reader.eventAtVersion(version))
 * )
 *
 * // Does not compile: the reader has no appendEvent, and Writer is not provided here.
 * // EventLog.readOnly(() => EventLog.appendEvent(0, { typeName: "x", payload: {} }))
 * ```
 *
 * @since 0.1.0
 * @category transactions
 */
export const readOnly = <A, E, R>(
  body: (reader: Reader) => ReadOnlyBody<A, E, R>
): Effect.Effect<A, E | ReadError, Exclude<R, Reader | Provided> | EventLog> =>
  Effect.flatMap(internal.EventLogTag, (log) => log.readOnly(body))

/**
 * Runs `body` in one primary transaction with a `Reader & Writer` (both also
 * in its context). Any failure, defect or interruption rolls it back; a
 * refused COMMIT is `CommitFailed`. Nothing is retried.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EventLog } from "@effect-sql-router/effect4"
 *
 * const deposit = (account: string, amount: number) =>
 *   EventLog.readWrite((tx) =>
 *     Effect.flatMap(tx.systemVersion, (version) =>
 *       tx.appendEvent(version, { typeName: "Deposited", payload: { account, amount } })
 *     )
 *   )
 * ```
 *
 * @since 0.1.0
 * @category transactions
 */
export const readWrite = <A, E, R>(
  body: (tx: Reader & Writer) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | WriteError, Exclude<R, Reader | Writer | Provided> | EventLog> =>
  Effect.flatMap(internal.EventLogTag, (log) => log.readWrite(body))

/**
 * Creates the log's tables and triggers if they are missing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const migrate: Effect.Effect<void, WriteError, EventLog> = Effect.flatMap(
  internal.EventLogTag,
  (log) => log.migrate
)

// -----------------------------------------------------------------------------
// Reader and Writer accessors
// -----------------------------------------------------------------------------

/**
 * The version of the last event in the log (0 when empty), in the current transaction.
 *
 * @since 0.1.0
 * @category accessors
 */
export const systemVersion: Effect.Effect<number, SqlError | TransactionClosed, Reader> = Effect.flatMap(
  internal.ReaderTag,
  (reader) => reader.systemVersion
)

/**
 * The event at a version, if there is one, in the current transaction.
 *
 * @since 0.1.0
 * @category accessors
 */
export const eventAtVersion = (
  version: number
): Effect.Effect<Option.Option<Event>, SqlError | InvalidEvent | UsageError, Reader> =>
  Effect.flatMap(internal.ReaderTag, (reader) => reader.eventAtVersion(version))

/**
 * The first event after a version, if there is one, in the current transaction.
 *
 * @since 0.1.0
 * @category accessors
 */
export const eventAfterVersion = (
  version: number
): Effect.Effect<Option.Option<Event>, SqlError | InvalidEvent | UsageError, Reader> =>
  Effect.flatMap(internal.ReaderTag, (reader) => reader.eventAfterVersion(version))

/**
 * The version a projection has processed, in the current transaction.
 *
 * @since 0.1.0
 * @category accessors
 */
export const projectionVersion = (
  id: number
): Effect.Effect<number, SqlError | ProjectionNotFound | UsageError, Reader> =>
  Effect.flatMap(internal.ReaderTag, (reader) => reader.projectionVersion(id))

/**
 * A range of events (see {@link ReadEventsOptions}), in the current transaction.
 *
 * @since 0.1.0
 * @category accessors
 */
export const events = (
  options: ReadEventsOptions
): Effect.Effect<ReadonlyArray<Event>, SqlError | InvalidEvent | UsageError, Reader> =>
  Effect.flatMap(internal.ReaderTag, (reader) => reader.events(options))

/**
 * A payload given as JSON text, stored as the JSON value it holds rather
 * than as a JSON string: the Conductor's `Payload` is JSON text. At append
 * the text must parse, hold only what a payload may hold (see
 * {@link NewEvent}), and decode with the type's payload Schema if it has one
 * (the text is the encoded form); otherwise the append fails with
 * {@link InvalidEvent} and nothing is written. The database keeps `jsonb`:
 * whitespace, key order and duplicate keys (the last one wins, as in
 * `JSON.parse`) are not kept. Reads give the parsed value;
 * `JSON.stringify(event.payload)` gives JSON text again.
 *
 * @example
 * ```ts
 * import { EventLog } from "@effect-sql-router/effect4"
 *
 * // What a Conductor-style caller holds: JSON text.
 * const payload = '{"account":"ada","amount":10}'
 *
 * // Stored as the object { account: "ada", amount: 10 }.
 * export const appendText = EventLog.readWrite((tx) =>
 *   tx.appendEvent(0, { typeName: "Deposited", payload: EventLog.rawJson(payload) })
 * )
 *
 * // Without the wrapper, a string is a JSON string: stored as "{\"account\":…}".
 * export const appendString = EventLog.readWrite((tx) =>
 *   tx.appendEvent(0, { typeName: "Note", payload: "just a string" })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const rawJson: (text: string) => RawJson = payload.rawJson

/**
 * True for a payload made by {@link rawJson}.
 *
 * @since 0.1.0
 * @category guards
 */
export const isRawJson: (value: unknown) => value is RawJson = payload.isRawJson

/**
 * Appends an event if the log is still at `assumedVersion`; fails with {@link VersionMismatch} otherwise.
 *
 * @since 0.1.0
 * @category accessors
 */
export const appendEvent = (
  assumedVersion: number,
  event: NewEvent
): Effect.Effect<number, VersionMismatch | InvalidEvent | SqlError | UsageError, Writer> =>
  Effect.flatMap(internal.WriterTag, (writer) => writer.appendEvent(assumedVersion, event))

/**
 * Creates a projection's version at 0 unless it exists; returns its version.
 *
 * @since 0.1.0
 * @category accessors
 */
export const initProjectionVersion = (id: number): Effect.Effect<number, SqlError | UsageError, Writer> =>
  Effect.flatMap(internal.WriterTag, (writer) => writer.initProjectionVersion(id))

/**
 * Records the version a projection has processed.
 *
 * @since 0.1.0
 * @category accessors
 */
export const setProjectionVersion = (
  id: number,
  version: number
): Effect.Effect<void, SqlError | ProjectionNotFound | UsageError, Writer> =>
  Effect.flatMap(internal.WriterTag, (writer) => writer.setProjectionVersion(id, version))

// -----------------------------------------------------------------------------
// Streams
// -----------------------------------------------------------------------------

/**
 * The events of a long range, one page per read-only transaction (so no
 * snapshot is held on a replica for the whole range). Ends at the newest
 * event when a page comes back short. Events are immutable and gapless, so
 * pages from different snapshots join without holes or repeats.
 *
 * @since 0.1.0
 * @category streams
 */
export const stream = (
  options?: StreamOptions
): Stream.Stream<Event, InvalidEvent | InvalidInput | ReadError, EventLog> =>
  internal.streamFromContext(options)

/**
 * The seed's `Listener`: emits `Ready` once it is listening, then `Inserted`
 * for each appended version, in order, each once. Built on
 * `Durable.subscribe`: after a lost connection (a primary restart, a
 * failover the router followed) it listens again and reports the versions
 * appended meanwhile from the log's system version, so none is skipped or
 * repeated. Fails only on bad options (`InvalidInput`, before listening);
 * stop it by interrupting its fiber or with `Stream.take`. `mode: "poll"` polls instead of LISTEN.
 *
 * Versions are learnt from the primary: a replica may not have replayed
 * version `v` yet when `Inserted(v)` arrives. A consumer that reads on
 * replicas reads from its own projection version on and comes back for what
 * is not there yet (see `examples/event-log.ts`), or reads with
 * `SqlRouter.primary`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { EventLog } from "@effect-sql-router/effect4"
 *
 * const follow = EventLog.listen({ from: 0 }).pipe(
 *   Stream.runForEach((signal) =>
 *     signal._tag === "Ready"
 *       ? Effect.log("listening")
 *       : Effect.log(`version ${signal.version} appended`)
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category streams
 */
export const listen = (options?: ListenOptions): Stream.Stream<ListenEvent, InvalidInput, EventLog> =>
  internal.listenFromContext(options)

/**
 * The listener's signal that it is subscribed: every later insert is reported.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ready: Ready = listener.ready

/**
 * The listener's report of one inserted version.
 *
 * @since 0.1.0
 * @category constructors
 */
export const inserted: (version: number) => Inserted = listener.inserted

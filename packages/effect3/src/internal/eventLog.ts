/** @internal */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Consistency from "../Consistency.js"
import * as Durable from "../Durable.js"
import type * as EventLog from "../EventLog.js"
import type { CommitFailed, PrimaryUnavailable, ReplicaNotCaughtUp } from "../RouterError.js"
import { InvalidConfig } from "../RouterError.js"
import * as SqlRouter from "../SqlRouter.js"

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
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {
  override get message(): string {
    return `Event ${this.typeName}${this.version === undefined ? "" : ` at version ${this.version}`} is invalid: ${this.reason}`
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

const identifier = /^[a-z_][a-z0-9_]{0,47}$/

const checkName = (field: string, value: string) =>
  identifier.test(value)
    ? Effect.succeed(value)
    : Effect.fail(new InvalidConfig({ field, reason: "must be a lower-case SQL identifier of at most 48 characters" }))

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
}

const columns = `version, type_name, payload, "time", revision_vcs`

const queriesFor = (table: string, projections: string, channel: string): Queries => ({
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
    `CREATE OR REPLACE TRIGGER ${table}_notify AFTER INSERT ON ${table}
      FOR EACH ROW EXECUTE FUNCTION effect_sql_router_event_log_notify('${channel}')`,
    `CREATE OR REPLACE TRIGGER ${table}_immutable BEFORE UPDATE OR DELETE ON ${table}
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
  setProjection: `UPDATE ${projections} SET version = $2 WHERE id = $1 RETURNING id`
})

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
    const table = yield* checkName("table", options.table ?? "event_log")
    const projectionTable = yield* checkName("projectionTable", options.projectionTable ?? `${table}_projection`)
    const channel = yield* checkName("channel", options.channel ?? table)
    return {
      table,
      projectionTable,
      channel,
      revisionVcs: options.revisionVcs ?? "",
      payloads: options.payloads ?? {},
      queries: queriesFor(table, projectionTable, channel)
    }
  })

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

const decodeEvent = (config: Resolved) => (raw: unknown): Effect.Effect<EventLog.Event, InvalidEvent> =>
  Effect.gen(function*() {
    const row = yield* decodeRow(raw).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: "?", reason: cause.message, cause }))
    )
    const schema = config.payloads[row.type_name]
    const payload = schema === undefined ? row.payload : yield* Schema.decodeUnknown(schema)(row.payload).pipe(
      Effect.mapError((cause) =>
        new InvalidEvent({ typeName: row.type_name, version: row.version, reason: cause.message, cause })
      )
    )
    return Data.struct({
      version: row.version,
      typeName: row.type_name,
      payload,
      time: row.time,
      revisionVcs: row.revision_vcs
    })
  })

const encodePayload = (config: Resolved, event: EventLog.NewEvent): Effect.Effect<string, InvalidEvent> => {
  const schema = config.payloads[event.typeName]
  const encoded = schema === undefined
    ? Effect.succeed(event.payload)
    : Schema.encodeUnknown(schema)(event.payload).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: event.typeName, reason: cause.message, cause }))
    )
  return Effect.map(encoded, (payload) => JSON.stringify(payload) ?? "null")
}

// -----------------------------------------------------------------------------
// Reader and Writer over the transaction's SqlClient
// -----------------------------------------------------------------------------

const makeReader = (config: Resolved, sql: SqlClient.SqlClient): EventLog.Reader => {
  const q = config.queries
  const decode = decodeEvent(config)
  const one = (text: string, version: number) =>
    Effect.flatMap(sql.unsafe(text, [version]), (rows) =>
      rows.length === 0 ? Effect.succeed(Option.none()) : Effect.map(decode(rows[0]), Option.some))
  return {
    [ReaderTypeId]: ReaderTypeId,
    systemVersion: Effect.map(sql.unsafe<{ version: unknown }>(q.systemVersion), versionOf),
    eventAtVersion: (version) => one(q.eventAt, version),
    eventAfterVersion: (version) => one(q.eventAfter, version),
    events: ({ atVersion, limit, reverse }) =>
      Effect.flatMap(
        sql.unsafe(reverse === true ? q.eventsReverse : q.eventsForward, [atVersion, limit]),
        (rows) => Effect.forEach(rows, decode)
      ),
    projectionVersion: (id) =>
      Effect.flatMap(sql.unsafe<{ version: unknown }>(q.projectionVersion, [id]), (rows) =>
        rows.length === 0 ? Effect.fail(new ProjectionNotFound({ id })) : Effect.succeed(versionOf(rows)))
  }
}

const makeReadWrite = (config: Resolved, sql: SqlClient.SqlClient): EventLog.Reader & EventLog.Writer => {
  const q = config.queries
  const reader = makeReader(config, sql)
  return {
    ...reader,
    [WriterTypeId]: WriterTypeId,
    appendEvent: (assumedVersion, event) =>
      Effect.gen(function*() {
        const payload = yield* encodePayload(config, event)
        const inserted = yield* sql.unsafe<{ version: unknown }>(q.append, [
          assumedVersion,
          event.typeName,
          payload,
          event.revisionVcs ?? config.revisionVcs
        ])
        if (inserted.length > 0) return versionOf(inserted)
        // A new statement, so a new snapshot: it sees the appender that won.
        const actual = yield* reader.systemVersion
        return yield* new VersionMismatch({ assumed: assumedVersion, actual })
      }),
    initProjectionVersion: (id) =>
      Effect.zipRight(
        sql.unsafe(q.initProjection, [id]),
        Effect.map(sql.unsafe<{ version: unknown }>(q.projectionVersion, [id]), versionOf)
      ),
    setProjectionVersion: (id, version) =>
      Effect.flatMap(sql.unsafe(q.setProjection, [id, version]), (rows) =>
        rows.length === 0 ? Effect.fail(new ProjectionNotFound({ id })) : Effect.void)
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

    const readOnly: EventLog.EventLog["readOnly"] = <A, E, R>(body: (reader: EventLog.Reader) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (outer) =>
        router.readTransaction(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          // Nested in a transaction that has run statements already, the
          // isolation level is that transaction's.
          if (Option.isNone(outer)) yield* sql.unsafe(repeatableRead)
          yield* raiseSessionPosition(sql)
          const reader = makeReader(config, sql)
          return yield* Effect.provideService(body(reader), ReaderTag, reader)
        }))) as Effect.Effect<A, E | EventLog.ReadError, Exclude<R, EventLog.Reader | EventLog.Provided>>

    const readWrite: EventLog.EventLog["readWrite"] = <A, E, R>(
      body: (tx: EventLog.Reader & EventLog.Writer) => Effect.Effect<A, E, R>
    ) =>
      router.transaction(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const tx = makeReadWrite(config, sql)
        return yield* body(tx).pipe(Effect.provideService(ReaderTag, tx), Effect.provideService(WriterTag, tx))
      })) as Effect.Effect<A, E | EventLog.WriteError, Exclude<R, EventLog.Reader | EventLog.Writer | EventLog.Provided>>

    const migrate = router.transaction(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach(config.queries.migrate, (text) => sql.unsafe(text), { discard: true })))

    const primaryVersion = router.withPrimary(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(sql.unsafe<{ version: unknown }>(config.queries.systemVersion), versionOf))
    )

    const stream = (streamOptions: EventLog.StreamOptions = {}) => {
      const reverse = streamOptions.reverse === true
      const pageSize = streamOptions.pageSize ?? 1000
      const start = streamOptions.atVersion ?? (reverse ? Number.MAX_SAFE_INTEGER : 1)
      return Stream.paginateChunkEffect(start, (atVersion) =>
        Effect.map(readOnly((reader) => reader.events({ atVersion, reverse, limit: pageSize })), (events) => {
          const last = events[events.length - 1]
          const next = last === undefined || events.length < pageSize
            ? Option.none<number>()
            : Option.some(reverse ? last.version - 1 : last.version + 1)
          return [Chunk.unsafeFromArray(events), Option.filter(next, (v) => v >= 1)] as const
        }))
    }

    const listen = (listenOptions: EventLog.ListenOptions = {}) =>
      listenStream(config, primaryVersion, listenOptions).pipe(Stream.provideService(SqlRouter.SqlRouter, router))

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

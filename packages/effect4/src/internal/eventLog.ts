/** @internal */
import * as Catalog from "@effect-sql-router/core/Catalog"
import * as Inputs from "@effect-sql-router/core/eventLog/Inputs"
import * as Pages from "@effect-sql-router/core/eventLog/Pages"
import * as Sql from "@effect-sql-router/core/eventLog/Sql"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqlError from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import * as Consistency from "../Consistency.js"
import type * as EventLog from "../EventLog.js"
import { InvalidConfig, PrimaryUnavailable } from "../RouterError.js"
import * as SqlRouter from "../SqlRouter.js"
import { describe, isConnectionError } from "./errors.js"
import { InvalidInput, ProjectionNotFound, TransactionClosed, VersionMismatch } from "./eventLog/errors.js"
import { inputs } from "./eventLog/inputs.js"
import { listenStream } from "./eventLog/listen.js"
import { decodeEvent, encodePayload, type Payloads, versionOf } from "./eventLog/payload.js"

// -----------------------------------------------------------------------------
// Tags
// -----------------------------------------------------------------------------

/** @internal */
export const ReaderTypeId: EventLog.ReaderTypeId = Symbol.for("effect-sql-router/EventLog/Reader") as EventLog.ReaderTypeId

/** @internal */
export const WriterTypeId: EventLog.WriterTypeId = Symbol.for("effect-sql-router/EventLog/Writer") as EventLog.WriterTypeId

/** @internal */
export const EventLogTag = Context.Service<EventLog.EventLog>("effect-sql-router/EventLog")

/** @internal */
export const ReaderTag = Context.Service<EventLog.Reader>("effect-sql-router/EventLog/Reader")

/** @internal */
export const WriterTag = Context.Service<EventLog.Writer>("effect-sql-router/EventLog/Writer")

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

/** @internal */
export interface Resolved extends Sql.Names {
  readonly revisionVcs: string
  readonly payloads: Payloads
  readonly queries: Sql.Queries
}

/** @internal */
export const resolve = (options: EventLog.Options): Effect.Effect<Resolved, InvalidConfig> => {
  const names = Sql.resolveNames(options)
  if (Sql.isNameRefusal(names)) return Effect.fail(new InvalidConfig(names))
  const revisionVcs = options.revisionVcs ?? ""
  if (!Inputs.isRevisionVcs(revisionVcs)) {
    return Effect.fail(new InvalidConfig({ field: "revisionVcs", reason: Inputs.revisionVcsRule }))
  }
  const payloads = options.payloads ?? {}
  if (!Object.keys(payloads).every(Inputs.isTypeName)) {
    return Effect.fail(
      new InvalidConfig({ field: "payloads", reason: `every key is a type name that ${Inputs.typeNameRule}` })
    )
  }
  return Effect.succeed({ ...names, revisionVcs, payloads, queries: Sql.queriesFor(names) })
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

const makeReader = (config: Resolved, sql: SqlClient.SqlClient, state: TransactionState): EventLog.Reader => {
  const q = config.queries
  const decode = decodeEvent(config.payloads)
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
        const payload = yield* encodePayload(config.payloads, valid)
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
        Effect.andThen(
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
 * Monotonic reads: in a causal session, the session's position rises to what
 * this read saw, so its next read goes only where that is replayed.
 */
const raiseSessionPosition = (sql: SqlClient.SqlClient) =>
  Effect.flatMap(Effect.serviceOption(Consistency.Session), (session) =>
    Option.isNone(session) ? Effect.void : Effect.flatMap(sql.unsafe<{ lsn: string | null }>(Catalog.snapshotPosition), (rows) => {
      const text = rows[0]?.lsn
      if (text === undefined || text === null) return Effect.void
      const seen = BigInt(text)
      return Ref.update(session.value, (state) =>
        state.lsn !== undefined && state.lsn >= seen ? state : { ...state, lsn: seen })
    }))

/**
 * A connection failure on the primary (it is down, restarting, or the link
 * broke) before COMMIT is the router's `PrimaryUnavailable`: the transaction
 * did not commit. A failure during COMMIT stays `CommitFailed`.
 */
const onPrimary = <A, E, R>(
  router: SqlRouter.SqlRouter,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | PrimaryUnavailable, R> =>
  Effect.catchIf(
    effect,
    (error): error is E & SqlError.SqlError => SqlError.isSqlError(error) && isConnectionError(error),
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

/** A stream's pages, each read in its own read-only transaction. */
const pages = (readOnly: EventLog.EventLog["readOnly"], options: EventLog.StreamOptions) => {
  const paging = Pages.paging(options)
  const { pageSize, reverse } = paging
  // The options were checked and the reader is used in its own body.
  const pageAt = (reader: EventLog.Reader, atVersion: number) =>
    reader.events({ atVersion, reverse, limit: pageSize }).pipe(
      Effect.catchTags({ InvalidInput: Effect.die, TransactionClosed: Effect.die })
    )
  return Stream.paginate(paging.start, (atVersion) =>
    Effect.map(readOnly((reader) => pageAt(reader, atVersion)), (events) => {
      const next = Pages.nextPage(paging, events.length, events[events.length - 1]?.version)
      return [events, next === undefined ? Option.none<number>() : Option.some(next)] as const
    }))
}

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
      router.readTransaction(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // Nested in a transaction (a savepoint) that has run statements
        // already, the isolation level is that transaction's.
        const level = yield* Effect.serviceOption(sql.transactionService)
        if (Option.isNone(level) || level.value[1] === 0) yield* sql.unsafe(Sql.repeatableRead)
        yield* raiseSessionPosition(sql)
        const state: TransactionState = { open: true }
        const reader = makeReader(config, sql, state)
        // ReadOnlyBody is the effect itself whenever the call compiled.
        const effect = Effect.suspend(() => body(reader) as Effect.Effect<A, E, R>)
        return yield* Effect.provideService(effect, ReaderTag, reader).pipe(
          Effect.ensuring(Effect.sync(() => state.open = false))
        )
      })) as Effect.Effect<A, E | EventLog.ReadError, Exclude<R, EventLog.Reader | EventLog.Provided>>

    const readWrite: EventLog.EventLog["readWrite"] = <A, E, R>(
      body: (tx: EventLog.Reader & EventLog.Writer) => Effect.Effect<A, E, R>
    ) =>
      onPrimary(router, router.transaction(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const state: TransactionState = { open: true }
        const tx = makeReadWrite(config, sql, state)
        return yield* Effect.suspend(() => body(tx)).pipe(
          Effect.provideService(ReaderTag, tx),
          Effect.provideService(WriterTag, tx),
          Effect.ensuring(Effect.sync(() => state.open = false))
        )
      }))) as Effect.Effect<A, E | EventLog.WriteError, Exclude<R, EventLog.Reader | EventLog.Writer | EventLog.Provided>>

    const migrate = onPrimary(router, router.transaction(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.forEach(config.queries.migrate, (text) => sql.unsafe(text), { discard: true }))))

    const primaryVersion = router.withPrimary(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(sql.unsafe<{ version: unknown }>(config.queries.systemVersion), versionOf))
    )

    const stream = (streamOptions: EventLog.StreamOptions = {}) =>
      Stream.unwrap(Effect.map(inputs.stream(streamOptions), (valid) => pages(readOnly, valid)))

    const listen = (listenOptions: EventLog.ListenOptions = {}) =>
      Stream.unwrap(Effect.map(inputs.listen(listenOptions), () =>
        listenStream(config.channel, primaryVersion, listenOptions).pipe(Stream.provideService(SqlRouter.SqlRouter, router))))

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
// From the context
// -----------------------------------------------------------------------------

/** @internal */
export const streamFromContext = (options?: EventLog.StreamOptions) =>
  Stream.unwrap(Effect.map(EventLogTag, (log) => log.stream(options)))

/** @internal */
export const listenFromContext = (options?: EventLog.ListenOptions) =>
  Stream.unwrap(Effect.map(EventLogTag, (log) => log.listen(options)))

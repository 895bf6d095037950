/** @internal */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Pg from "pg"
import type { Column } from "../../Cdc.js"
import { MissingPrimaryKey, ReplicationError, UnknownTable, UnsupportedType } from "./errors.js"
import { quoteIdent } from "@effect-sql-router/core/cdc/ApplyPlan"
import { parseLsn } from "@effect-sql-router/core/cdc/Changes"
import * as Follow from "@effect-sql-router/core/cdc/Follow"
import * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import * as Types from "@effect-sql-router/core/cdc/Types"
import * as Walsender from "@effect-sql-router/core/cdc/Walsender"
import { describe } from "../errors.js"

// Everything said to the source server: the control connection (catalog,
// publications, slots), the exported snapshot, and the replication session.
//
// The native driver of @effect/sql-pg 4 does not speak the replication
// protocol, so these connections are `pg` Clients. `pg` is an optional peer
// of the package: it is imported here, lazily, when the first CDC connection
// opens, so that an application without Cdc needs no `pg` (only types are
// imported statically, and none of them reaches a public declaration).

/** @internal */
export interface Connect {
  readonly url: Redacted.Redacted<string>
  readonly applicationName: string
}

/** A connection to the source: what this module asks of a `pg` Client. @internal */
export interface Client {
  readonly query: {
    (text: string, values?: Array<unknown>): Promise<{ readonly rows: Array<unknown> }>
    (config: { readonly text: string; readonly values?: Array<unknown>; readonly types: unknown }): Promise<{ readonly rows: Array<unknown> }>
  }
}

/**
 * A replication connection: what `startSession` asks of a `pg` Client (its
 * protocol connection is reached through it). Declared by the core, so that
 * the package's declarations need no types of the optional peer `pg`.
 * @internal
 */
export type ReplicationClient = Walsender.Connection

// One session format for every connection we open, so that the snapshot
// and the stream print values alike.
// Intervals print as ISO 8601 ("P1DT2H"), which any server reads back exactly.
const sessionOptions = "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c bytea_output=hex -c extra_float_digits=1"

const fail = (operation: string, cause: unknown) =>
  new ReplicationError({ operation, reason: describe(cause), cause })

let pgModule: Promise<typeof Pg> | undefined

/** The `pg` package, loaded on first use. */
const loadPg = Effect.tryPromise({
  try: () => pgModule ??= import("pg").catch((error) => {
    pgModule = undefined
    throw error
  }),
  catch: (cause) =>
    new ReplicationError({
      operation: "connect",
      reason: `CDC needs the optional peer dependency pg (npm install pg): ${describe(cause)}`,
      cause
    })
})

const openClient = (connect: Connect, operation: string, replication: boolean) =>
  Effect.acquireRelease(
    Effect.flatMap(loadPg, (pg) =>
      Effect.tryPromise({
        try: async () => {
          const client = new pg.Client({
            connectionString: Redacted.value(connect.url),
            application_name: connect.applicationName,
            connectionTimeoutMillis: 5_000,
            options: sessionOptions,
            types: { getTypeParser: ((oid: number) => Types.decoderFor(oid)) as never },
            ...(replication ? { replication: "database" } : {})
          } as Pg.ClientConfig)
          client.on("error", () => {})
          try {
            await client.connect()
          } catch (error) {
            void client.end().catch(() => {})
            throw error
          }
          return client
        },
        catch: (cause) => fail(operation, cause)
      })),
    (client) => Effect.promise(() => client.end().catch(() => {})).pipe(Effect.timeout("2 seconds"), Effect.ignore)
  )

/** A plain connection to the source, for catalog and slot management. @internal */
export const control = (connect: Connect): Effect.Effect<Client, ReplicationError, Scope.Scope> =>
  openClient(connect, "connect", false)

/**
 * A replication connection to the source, for `startSession`: opened apart
 * so that a session's other setup (catalog, target, slot) runs while the
 * server starts its backend.
 * @internal
 */
export const replicationConnection = (connect: Connect): Effect.Effect<ReplicationClient, ReplicationError, Scope.Scope> =>
  openClient(connect, "start replication", true)

const queryTyped = (
  client: Client,
  operation: string,
  text: string,
  types: Types.Registry,
  values: ReadonlyArray<unknown> = []
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, ReplicationError> =>
  Effect.tryPromise({
    try: async () =>
      (await client.query({
        text,
        values: values as Array<unknown>,
        types: { getTypeParser: (oid: number) => types.decoderFor(oid) }
      })).rows as ReadonlyArray<Record<string, unknown>>,
    catch: (cause) => fail(operation, cause)
  })

/** @internal */
export const query = <A = Record<string, unknown>>(
  client: Client,
  operation: string,
  sql: string,
  params: ReadonlyArray<unknown> = []
): Effect.Effect<ReadonlyArray<A>, ReplicationError> =>
  Effect.tryPromise({
    try: async () => (await client.query(sql, params as Array<unknown>)).rows as ReadonlyArray<A>,
    catch: (cause) => fail(operation, cause)
  })

// -----------------------------------------------------------------------------
// Catalog
// -----------------------------------------------------------------------------

/** A source table as the catalog describes it. @internal */
export interface TableInfo {
  readonly schema: string
  readonly table: string
  /** `schema.table`, quoted for SQL. */
  readonly quoted: string
  readonly columns: ReadonlyArray<Column & { readonly formatted: string }>
  /** Primary key columns, in key order. */
  readonly key: ReadonlyArray<string>
  /** How the rule's column types resolve (shared by the rule's tables). */
  readonly types: Types.Registry
}

/**
 * The rule's type registry: the catalog facts of every type the columns use
 * (array elements and domain bases followed), resolved by the core.
 * @internal
 */
export const readTypes = (
  client: Client,
  typeOids: ReadonlyArray<number>,
  unsupportedTypes: Types.UnsupportedTypes
): Effect.Effect<Types.Registry, ReplicationError> =>
  Effect.map(
    query<Types.TypeFact>(client, "describe", Types.typeFactsQuery, [typeOids]),
    (facts) => Types.makeRegistry(facts, unsupportedTypes)
  )

/**
 * Looks up every table of a rule and refuses, before anything is applied, a
 * table that does not exist, has no primary key (publishing it would make the
 * source refuse its updates and deletes), cannot identify deleted rows, or
 * (with `checkTypes`) has a column of a type the targets cannot take
 * (`unsupportedTypes: "text"` takes every type, as its text form).
 * @internal
 */
export const describeTables = (
  client: Client,
  tables: ReadonlyArray<string>,
  options: { readonly checkTypes: boolean; readonly unsupportedTypes?: Types.UnsupportedTypes | undefined } = {
    checkTypes: true
  }
): Effect.Effect<
  ReadonlyArray<TableInfo>,
  ReplicationError | UnknownTable | MissingPrimaryKey | UnsupportedType
> =>
  Effect.gen(function*() {
    const described = yield* Effect.forEach(tables, (name) => describeTable(client, name))
    const oids = Array.from(new Set(described.flatMap((t) => t.columns.map((c) => c.typeOid))))
    const types = yield* readTypes(client, oids, options.unsupportedTypes ?? "fail")
    for (const table of options.checkTypes ? described : []) {
      for (const column of table.columns) {
        if (!types.columnType(column.typeOid)) {
          return yield* new UnsupportedType({
            table: `${table.schema}.${table.table}`,
            column: column.name,
            type: column.formatted
          })
        }
      }
    }
    return described.map((table) => ({ ...table, types }))
  })

const describeTable = (client: Client, name: string) =>
    Effect.gen(function*() {
      const [found] = yield* query<{ oid: number | null; schema: string; table: string; ident: string }>(
        client,
        "describe",
        `SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS table, c.relreplident AS ident
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')`,
        [name]
      )
      if (!found) return yield* new UnknownTable({ table: name })
      const columns = yield* query<{
        name: string
        oid: number
        mod: number
        typname: string
        formatted: string
        keypos: number | null
      }>(
        client,
        "describe",
        `SELECT a.attname AS name, a.atttypid::int AS oid, a.atttypmod AS mod, t.typname,
                format_type(a.atttypid, a.atttypmod) AS formatted,
                array_position(i.indkey::int2[], a.attnum) AS keypos
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum`,
        [found.oid]
      )
      const label = `${found.schema}.${found.table}`
      const key = columns.filter((c) => c.keypos !== null).sort((a, b) => a.keypos! - b.keypos!).map((c) => c.name)
      if (key.length === 0) return yield* new MissingPrimaryKey({ table: label })
      if (found.ident !== "d" && found.ident !== "f") {
        return yield* new MissingPrimaryKey({
          table: label,
          reason: "its REPLICA IDENTITY is NOTHING or USING INDEX: deletes could not name the row; use DEFAULT or FULL"
        })
      }
      return {
        schema: found.schema,
        table: found.table,
        quoted: `${quoteIdent(found.schema)}.${quoteIdent(found.table)}`,
        key,
        columns: columns.map((c) => ({
          name: c.name,
          typeOid: c.oid,
          typeName: c.typname,
          typeMod: c.mod,
          isKey: c.keypos !== null,
          formatted: c.formatted
        }))
      } satisfies Omit<TableInfo, "types">
    })

// -----------------------------------------------------------------------------
// Publications and slots
// -----------------------------------------------------------------------------

const ownerComment = (rule: string) => `effect-sql-router/Cdc rule ${rule}`

/**
 * Creates the publication for the rule's tables, or adopts an existing one.
 * One we created (marked by its comment) is kept in step with the rule's
 * tables; one we adopted must already publish them.
 * @internal
 */
export const ensurePublication = (
  client: Client,
  name: string,
  rule: string,
  tables: ReadonlyArray<TableInfo>
): Effect.Effect<void, ReplicationError> =>
  Effect.gen(function*() {
    const list = tables.map((t) => t.quoted).join(", ")
    const [existing] = yield* query<{ comment: string | null }>(
      client,
      "publication",
      "SELECT obj_description(oid, 'pg_publication') AS comment FROM pg_publication WHERE pubname = $1",
      [name]
    )
    if (!existing) {
      yield* query(client, "publication", `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${list}`).pipe(
        // Two processes racing to create it: the other one's is as good.
        Effect.catchIf((e) => /already exists/.test(e.reason), () => Effect.void)
      )
      yield* query(client, "publication", `COMMENT ON PUBLICATION ${quoteIdent(name)} IS '${ownerComment(rule)}'`)
      return
    }
    if (existing.comment === ownerComment(rule)) {
      yield* query(client, "publication", `ALTER PUBLICATION ${quoteIdent(name)} SET TABLE ${list}`)
      return
    }
    const published = yield* query<{ name: string }>(
      client,
      "publication",
      "SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1",
      [name]
    )
    const missing = tables.filter((t) => !published.some((p) => p.name === `${t.schema}.${t.table}`))
    if (missing.length > 0) {
      return yield* new ReplicationError({
        operation: "publication",
        reason: `the existing publication ${name} does not publish ${missing.map((t) => `${t.schema}.${t.table}`).join(", ")}`
      })
    }
  })

/** Drops the publication if this library created it for the rule. @internal */
export const dropPublication = (client: Client, name: string, rule: string): Effect.Effect<void, ReplicationError> =>
  Effect.gen(function*() {
    const [existing] = yield* query<{ comment: string | null }>(
      client,
      "publication",
      "SELECT obj_description(oid, 'pg_publication') AS comment FROM pg_publication WHERE pubname = $1",
      [name]
    )
    if (existing?.comment === ownerComment(rule)) {
      yield* query(client, "publication", `DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`)
    }
  })

/** @internal */
export interface SlotInfo {
  readonly plugin: string | null
  readonly database: string | null
  readonly active: boolean
  readonly confirmed: string | null
  readonly retainedBytes: number | null
  readonly currentLsn: string
}

/** @internal */
export const slotInfo = (client: Client, slot: string): Effect.Effect<SlotInfo | undefined, ReplicationError> =>
  Effect.map(
    query<SlotInfo>(
      client,
      "slot",
      `SELECT plugin, database, active, confirmed_flush_lsn::text AS confirmed,
              (pg_current_wal_lsn() - restart_lsn)::float8 AS "retainedBytes",
              pg_current_wal_lsn()::text AS "currentLsn"
       FROM pg_replication_slots WHERE slot_name = $1`,
      [slot]
    ),
    (rows) => rows[0]
  )

/** @internal */
export const currentLsn = (client: Client): Effect.Effect<bigint, ReplicationError> =>
  Effect.map(
    query<{ lsn: string }>(client, "lsn", "SELECT pg_current_wal_lsn()::text AS lsn"),
    (rows) => parseLsn(rows[0]!.lsn)
  )

/**
 * Drops a slot, ending the walsender that still holds it (a consumer of ours
 * that just stopped may not have left the server yet).
 * @internal
 */
export const dropSlot = (client: Client, slot: string): Effect.Effect<void, ReplicationError> =>
  query(
    client,
    "drop slot",
    `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
    [slot]
  ).pipe(
    Effect.andThen(
      query(client, "drop slot", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [slot])
    ),
    // The terminated walsender may hold the slot for a moment longer.
    Effect.retry({ times: 50, schedule: Schedule.spaced("100 millis"), while: (e) => /is active/.test(e.reason) }),
    Effect.asVoid
  )

/**
 * Creates a logical slot over a replication connection, without an exported
 * snapshot: rules copy existing rows in chunks while the stream flows (see
 * `snapshot.ts`).
 * @internal
 */
export const createSlot = (
  connect: Connect,
  slot: string,
  options: { readonly failover: boolean }
): Effect.Effect<{ readonly consistentPoint: bigint }, ReplicationError> =>
  Effect.scoped(Effect.gen(function*() {
    const replication = yield* openClient(connect, "create slot", true)
    const opts = ["SNAPSHOT 'nothing'", ...(options.failover ? ["FAILOVER true"] : [])]
    const [created] = yield* query<{ consistent_point: string }>(
      replication,
      "create slot",
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (${opts.join(", ")})`
    )
    return { consistentPoint: parseLsn(created!.consistent_point) }
  }))

/**
 * One chunk of a table in key order, read in a REPEATABLE READ transaction
 * together with that transaction's snapshot (which transactions it could
 * not see).
 * @internal
 */
export const readChunk = (
  client: Client,
  table: TableInfo,
  after: ReadonlyArray<string> | null,
  limit: number
): Effect.Effect<{ readonly rows: ReadonlyArray<Record<string, unknown>>; readonly visibility: string }, ReplicationError> => {
  const chunk = Snapshot.chunkQuery(table, after, limit)
  return Effect.gen(function*() {
    yield* query(client, "snapshot", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    const [snapshot] = yield* query<{ snapshot: string }>(client, "snapshot", "SELECT pg_current_snapshot()::text AS snapshot")
    // Decoded as the stream decodes them: enums, domains and their arrays by the rule's types.
    const rows = yield* queryTyped(client, "snapshot", chunk.sql, table.types, chunk.params)
    yield* query(client, "snapshot", "COMMIT")
    return { rows, visibility: snapshot!.snapshot }
  }).pipe(Effect.tapError(() => Effect.ignore(query(client, "snapshot", "ROLLBACK"))))
}

/** Writes a watermark into the WAL (its own transaction). @internal */
export const emitWatermark = (client: Client, slot: string, watermark: Snapshot.Watermark): Effect.Effect<void, ReplicationError> => {
  const statement = Snapshot.emitWatermark(slot, watermark)
  return Effect.asVoid(query(client, "watermark", statement.sql, statement.params))
}

/** The source's row estimate of a table (`pg_class.reltuples`), undefined if never analyzed. @internal */
export const estimateRows = (client: Client, table: TableInfo): Effect.Effect<number | undefined, ReplicationError> =>
  Effect.map(
    query<{ rows: number | null }>(client, "snapshot", Snapshot.estimateQuery, [table.quoted]),
    (rows) => rows[0]?.rows ?? undefined
  )

// -----------------------------------------------------------------------------
// The replication session
// -----------------------------------------------------------------------------

/** One protocol message, in the order the server sent it. @internal */
export type Message = Follow.Message

/**
 * A replication session: its buffered messages are read without waiting
 * (`Follow.Buffered`: the catch-up's fast path), `take` waits for the next.
 * @internal
 */
export interface Session extends Follow.Buffered {
  /** The next message; fails when the connection is lost or the server ends the stream. */
  readonly take: Effect.Effect<Message, ReplicationError>
  /**
   * Reports `lsn` as flushed: the slot may forget everything before it. Never
   * moves back. The server hears of it within 10 ms, and at the latest when
   * the session closes (`StatusUpdates.makeReporter`).
   */
  readonly acknowledge: (lsn: bigint) => Effect.Effect<void>
  readonly confirmed: () => bigint
}

/**
 * Streams the slot from its confirmed position. The server's messages and
 * keepalives go into one inbox in arrival order, so a consumer that reaches
 * a keepalive has handled everything sent before it. The socket is paused
 * while the inbox is long (back-pressure on the walsender). Status updates
 * report only what was acknowledged, never what was merely received: that is
 * the at-least-once guarantee. The protocol side is the core's
 * `Walsender.start`; this adds the scope (the reporter closed with it, the
 * periodic status update) and the effectful `take`.
 * @internal
 */
export const startSession = (
  /** A connection from `replicationConnection`, used by this session only. */
  client: ReplicationClient,
  options: {
    readonly slot: string
    readonly publication: string
    /** The slot's confirmed position: status updates never report less. */
    readonly startLsn: bigint
    /**
     * Each status update asks for a keepalive in return: once everything
     * before it is applied, its position is acknowledged, so the slot moves
     * on while only other tables are written, and `sync` sees its goal.
     */
    readonly statusInterval: number
    /** Ask for logical decoding messages too (the snapshot's watermarks; PostgreSQL 14+). */
    readonly messages?: boolean | undefined
    /** Decodes the column values (the built-in types when absent). */
    readonly types?: Types.Registry | undefined
  }
): Effect.Effect<Session, ReplicationError, Scope.Scope> =>
  Effect.gen(function*() {
    const { inbox, status } = yield* Effect.acquireRelease(
      Effect.sync(() => Walsender.start(client, { ...options, fail })),
      ({ status }) => Effect.sync(status.close)
    )

    yield* Effect.sync(() => status.send(true)).pipe(
      Effect.repeat(Schedule.spaced(options.statusInterval)),
      Effect.forkScoped
    )

    const take = Effect.callback<Message, ReplicationError>((resume) => {
      const withdraw = inbox.wait((item) => resume(item._tag === "Failure" ? Effect.fail(item.error) : Effect.succeed(item)))
      return Effect.sync(withdraw)
    })

    return {
      take,
      ...Follow.buffered(inbox),
      acknowledge: (lsn) => Effect.sync(() => status.acknowledge(lsn)),
      confirmed: status.confirmed
    } satisfies Session
  })


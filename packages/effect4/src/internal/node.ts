/** @internal */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as PgPool from "@effect/sql-pg/PgPool"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { NodeInspectSymbol } from "effect/Inspectable"
import * as Redacted from "effect/Redacted"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type * as Connection from "effect/sql/SqlConnection"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import type * as Node from "../Node.js"
import { addressOf, parseTarget } from "./connectionString.js"

// A node is one `PgPool` of the native driver. Its sockets are ours (the
// driver's `stream` option), so that the router can sever them all at once:
// a replica that leaves rotation because it stopped answering fails the reads
// still waiting on it at once (they run again elsewhere), with no per-statement
// registration or timer. A statement that was sent to the node before the
// cut but had no socket yet (its session still opening) is caught by the
// node's sever count: it fails the same way once it gets its session.

/** A role's pool settings (`RouterConfig`'s `poolFor`). @internal */
export interface PoolSettings {
  readonly maxSize: number
  readonly minSize: number
  readonly multiplex: boolean
  readonly multiplexConcurrency: number
  readonly prepare: boolean
}

/** What the router keeps of a node beyond its public face. @internal */
export interface NodeInternals {
  /** The node's pool now: a role change (failover, promotion) replaces it with one of the role's size. */
  pool: PgPool.PgPool
  /** The pool's size now. */
  max: number
  /** Whether statements use named prepared statements. */
  prepare: boolean
  /** Connection-class failures routed statements met on the node (see `countFailure`). */
  failures: number
  /**
   * What the node's server has sent so far on each open socket: taken when
   * a probe starts, so that `sentSince` can tell a crowded server (it still
   * answers other connections) from a frozen one (it sends nothing).
   */
  readonly received: () => ReadonlyMap<Duplex, number>
  /** Whether the server sent anything on any of the node's sockets since `received` was taken. */
  readonly sentSince: (before: ReadonlyMap<Duplex, number>) => boolean
  /** How often the node was severed: a statement begun at another count fails when it gets its session. */
  severs: number
  /**
   * Destroys every open socket of the node: statements on them fail with a
   * connection error, and so do statements begun before the cut that get
   * their session after it.
   */
  readonly sever: () => void
  /**
   * Replaces the pool with one made with `settings` (a role change: the new
   * role's size, pipelining and preparation); the old one closes in the
   * background.
   */
  readonly reconfigure: (settings: PoolSettings) => Effect.Effect<void, SqlError>
}

const internals = new WeakMap<Node.Node, NodeInternals>()

/** @internal */
export const internalsOf = (node: Node.Node): NodeInternals => internals.get(node)!

/** How often `node` was severed (0 for a node the router did not make). @internal */
export const seversOf = (node: Node.Node): number => internals.get(node)?.severs ?? 0

/**
 * Severs `node`'s sessions (`NodeInternals.sever`); a node not made by
 * `Node.make` (a stub in a test) has none.
 * @internal
 */
export const sever = (node: Node.Node): void => internals.get(node)?.sever()

/** The rows of a result as `execute` returns them. @internal */
export type Rows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/**
 * One statement on one of the node's pooled sessions (shared when the node
 * multiplexes): `pool.use` with no scope and no wrapper object.
 * @internal
 */
export const query = (
  node: Node.Node,
  sql: string,
  params: ReadonlyArray<unknown>,
  rows: Rows
): Effect.Effect<ReadonlyArray<any>, SqlError> => {
  const own = internals.get(node)!
  const { pool, prepare, severs } = own
  return rows === undefined
    ? pool.use((connection) =>
      own.severs === severs ? Effect.map(connection.query(sql, params, prepare), resultRows) : severedBefore(node)
    )
    : pool.use((connection) =>
      own.severs === severs
        ? Effect.map(connection.query(sql, params, prepare), (result) => rows(result.rows))
        : severedBefore(node)
    )
}

/**
 * A statement begun before its node was severed got a session opened after
 * the cut: it fails as the severed ones did (a connection error), instead of
 * running on a node that has left rotation.
 */
const severedBefore = (node: Node.Node): Effect.Effect<never, SqlError> =>
  Effect.fail(
    new SqlError({
      reason: new ConnectionError({
        cause: undefined,
        message: `the sessions of ${node.id} were severed (it left rotation or stopped being the primary) before this statement was sent`,
        operation: "execute"
      })
    })
  )

/** The driver's full result (`executeRaw`). @internal */
export const queryRaw = (node: Node.Node, sql: string, params: ReadonlyArray<unknown>): Effect.Effect<unknown, SqlError> => {
  const own = internals.get(node)!
  const { pool, prepare, severs } = own
  return pool.use((connection) =>
    own.severs === severs ? connection.query(sql, params, prepare) : severedBefore(node)
  )
}

/** Positional rows (`executeValues`). @internal */
export const queryValues = (
  node: Node.Node,
  sql: string,
  params: ReadonlyArray<unknown>,
  prepare?: boolean
): Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, SqlError> => {
  const own = internals.get(node)!
  const severs = own.severs
  return own.pool.use((connection) =>
    own.severs === severs ? connection.queryValues(sql, params, prepare ?? own.prepare) : severedBefore(node)
  )
}

/** Without a prepared statement (`executeUnprepared`). @internal */
export const queryUnprepared = (
  node: Node.Node,
  sql: string,
  params: ReadonlyArray<unknown>,
  rows: Rows
): Effect.Effect<ReadonlyArray<any>, SqlError> => {
  const own = internals.get(node)!
  const severs = own.severs
  return own.pool.use((connection) =>
    own.severs === severs
      ? Effect.map(connection.query(sql, params, false), (result) => rows === undefined ? result.rows : rows(result.rows))
      : severedBefore(node)
  )
}

const resultRows = (result: PgConnection.Result): ReadonlyArray<any> => result.rows

/** A stream holds a session of its own for its whole life. @internal */
export const stream = (node: Node.Node, sql: string, params: ReadonlyArray<unknown>, rows: Rows): Stream.Stream<any, SqlError> => {
  const own = internals.get(node)!
  const severs = own.severs
  const rowsOf = Stream.unwrap(Effect.map(
    own.pool.reserve,
    (connection) => own.severs === severs ? connection.stream(sql, params) : Stream.fromEffect(severedBefore(node))
  ))
  return rows === undefined
    ? rowsOf
    : Stream.mapArray(rowsOf, (chunk) => rows(chunk) as any)
}

/**
 * A session of the driver as `effect/sql` sees it. One per session, made
 * once: a statement borrowed through the client's `borrower` allocates no
 * wrapper.
 */
class SessionConnection implements Connection.Connection {
  constructor(readonly session: PgConnection.PgConnection, readonly prepare: boolean) {}
  execute(sql: string, params: ReadonlyArray<unknown>, rows: Rows) {
    const result = this.session.query(sql, params, this.prepare)
    return rows === undefined ? Effect.map(result, resultRows) : Effect.map(result, (r) => rows(r.rows))
  }
  executeRaw(sql: string, params: ReadonlyArray<unknown>) {
    return this.session.query(sql, params, this.prepare)
  }
  executeValues(sql: string, params: ReadonlyArray<unknown>) {
    return this.session.queryValues(sql, params, this.prepare)
  }
  executeValuesUnprepared(sql: string, params: ReadonlyArray<unknown>) {
    return this.session.queryValues(sql, params, false)
  }
  executeUnprepared(sql: string, params: ReadonlyArray<unknown>, rows: Rows) {
    const result = this.session.query(sql, params, false)
    return rows === undefined ? Effect.map(result, resultRows) : Effect.map(result, (r) => rows(r.rows))
  }
  executeStream(sql: string, params: ReadonlyArray<unknown>, rows: Rows) {
    const rowsOf = this.session.stream(sql, params)
    return rows === undefined ? rowsOf : Stream.mapArray(rowsOf, (chunk) => rows(chunk) as any)
  }
}

/** The session a `Connection` of ours runs on (for transactions that pin one). @internal */
export const sessionOf = (connection: Connection.Connection): PgConnection.PgConnection | undefined =>
  connection instanceof SessionConnection ? connection.session : undefined

/** @internal */
const connections = new WeakMap<PgConnection.PgConnection, SessionConnection>()
export const connectionOf = (session: PgConnection.PgConnection, prepare: boolean): SessionConnection => {
  let connection = connections.get(session)
  if (connection === undefined) {
    connection = new SessionConnection(session, prepare)
    connections.set(session, connection)
  }
  return connection
}

/** `COMMIT` of an aborted transaction answers `ROLLBACK`: that is a failed commit. @internal */
export const commit = (connection: Connection.Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(connection.executeRaw("COMMIT", []) as Effect.Effect<PgConnection.Result, SqlError>, (result) =>
    result.command === "ROLLBACK"
      ? Effect.fail(
        new SqlError({
          reason: new UnknownError({
            cause: new Error("COMMIT rolled back an aborted transaction"),
            message: "COMMIT rolled back an aborted transaction",
            operation: "commit"
          })
        })
      )
      : Effect.void)

/** A COMMIT the server refused before running it leaves the transaction open: roll it back. @internal */
export const onCommitFailure = (connection: Connection.Connection): Effect.Effect<void> =>
  Effect.ignore(connection.executeUnprepared("ROLLBACK", [], undefined))

/** Where the driver keeps a session's own state; `PgClient` reads it the same way. */
const driverInternals = "~@effect/sql-pg/PgConnection/internals"

/** Whether the server or the socket ended `session` (the driver's own record; without one, not ended). */
const sessionEnded = (session: PgConnection.PgConnection): boolean =>
  (session as unknown as Record<string, { readonly deadError?: () => unknown } | undefined>)[driverInternals]
    ?.deadError?.() !== undefined

/**
 * `SqlClient.make`'s `isTransaction`: a session the server ended has no
 * transaction left to roll back, so its ROLLBACK is skipped. Without this the
 * ROLLBACK after a body that failed because its session ended (a restart, a
 * failover, `pg_terminate_backend`) fails as well, and `withTransaction`
 * makes that a defect in place of the body's typed `SqlError`. Left: a
 * session that ends while the ROLLBACK itself runs still dies there. @internal
 */
export const isTransaction = (connection: Connection.Connection): boolean => {
  const session = sessionOf(connection)
  return session === undefined || !sessionEnded(session)
}

/** PostgreSQL's JSON fragment, as `PgClient.json` makes it (the pg compiler knows its kind). @internal */
export const json = (value: unknown): Statement.Fragment =>
  Statement.fragment([Statement.custom<PgClient.PgCustom>("PgJson")(value, undefined, undefined)])

/** Sessions whose current transaction began read-only: a write transaction must not nest into one. */
const readOnlyTransactions = new WeakSet<Connection.Connection>()

/** Whether the transaction on `connection` began read-only. @internal */
export const isReadOnlyTransaction = (connection: Connection.Connection): boolean => readOnlyTransactions.has(connection)

const readOnlyBegin = /\bREAD\s+ONLY\b/i

/** Begins a transaction: `BEGIN READ ONLY` while `readOnly()`, or the fiber's `BeginTransaction`. @internal */
export const begin = (readOnly: () => boolean) =>
(connection: Connection.Connection, statement: string | undefined): Effect.Effect<void, SqlError> => {
  const text = statement ?? (readOnly() ? "BEGIN READ ONLY" : "BEGIN")
  // Set (or cleared) at every top-level BEGIN: sessions are reused.
  if (readOnlyBegin.test(text)) readOnlyTransactions.add(connection)
  else readOnlyTransactions.delete(connection)
  return Effect.asVoid(connection.executeUnprepared(text, [], undefined))
}

/** The options both a node's client and the routed client take from the router's. @internal */
export interface Transforms {
  readonly transformResultNames?: ((s: string) => string) | undefined
  readonly transformQueryNames?: ((s: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

/** The compiler and row transform of a client's options, as `PgClient` makes them. @internal */
export const transformsOf = (options: Transforms) => ({
  compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
  transformRows: options.transformResultNames
    ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
    : undefined
})

/** What makes the socket the driver connects with: ours, so that we can sever it. */
const socketFactory = (url: Redacted.Redacted<string>, sockets: Set<Net.Socket>): (() => Duplex) | undefined => {
  const target = parseTarget(Redacted.value(url))
  if (Result.isFailure(target)) return undefined
  const { host, port } = target.success
  const connect = host.startsWith("/")
    ? () => Net.connect({ path: `${host}/.s.PGSQL.${port}` })
    : () => Net.connect({ host, port, noDelay: true })
  return () => {
    const socket = connect()
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
    return socket
  }
}

/** The driver's options for a node's pool (and its client's `config`). */
const poolConfig = (
  options: Node.Options,
  prepare: boolean,
  spanAttributes: Record<string, unknown>,
  stream: (() => Duplex) | undefined
): PgPool.Config & PgClient.PgClientConfig => ({
  url: options.url,
  applicationName: options.applicationName,
  connectTimeout: options.connectTimeout,
  idleTimeout: options.idleTimeout,
  // Opening a session is bounded by connectTimeout; waiting for a free one is
  // not (the driver's acquireTimeout puts a scope and a timer on every
  // statement: 0.64-0.94x the throughput of SELECT 1 at c=32, median 0.79x):
  // readTimeout and writeTimeout bound a statement's wait and run together.
  maxConnections: options.maxSize,
  minConnections: options.minSize ?? 0,
  multiplex: options.multiplex ?? false,
  ...(options.multiplexConcurrency !== undefined ? { multiplexConcurrency: options.multiplexConcurrency } : {}),
  prepare,
  ...(stream !== undefined ? { stream } : {}),
  // A backend whose client is gone (a severed socket) stops its statement
  // within this interval instead of running it to the end (PostgreSQL 14+).
  // Not behind a pooler (the node has a direct URL): the backend's client is
  // the pooler, and PgBouncer refuses startup parameters it does not know.
  ...(options.direct === undefined ? { startupParameters: { client_connection_check_interval: "250" } } : {}),
  spanAttributes,
  transformResultNames: options.transformResultNames,
  transformQueryNames: options.transformQueryNames,
  transformJson: options.transformJson
})

/** Opens a node's pool with a role's `settings`, in a scope of its own under the node's: a resize closes the old one alone. */
const poolOpener = (config: PgPool.Config & PgClient.PgClientConfig, nodeScope: Scope.Scope) =>
(settings: Partial<PoolSettings>) =>
  Effect.flatMap(Scope.fork(nodeScope), (scope) =>
    Effect.map(
      Scope.provide(
        PgPool.make({
          ...config,
          ...(settings.maxSize !== undefined ? { maxConnections: settings.maxSize } : {}),
          ...(settings.minSize !== undefined ? { minConnections: settings.minSize } : {}),
          ...(settings.multiplex !== undefined ? { multiplex: settings.multiplex } : {}),
          ...(settings.multiplexConcurrency !== undefined ? { multiplexConcurrency: settings.multiplexConcurrency } : {}),
          ...(settings.prepare !== undefined ? { prepare: settings.prepare } : {})
        }),
        scope
      ),
      (pool) => [pool, scope] as const
    ))

/** What the node's own sockets have read, and whether the server sent anything on them since. */
const trafficOf = (sockets: ReadonlySet<Net.Socket>): Pick<NodeInternals, "received" | "sentSince"> => ({
  received: () => {
    const counts = new Map<Duplex, number>()
    for (const socket of sockets) counts.set(socket, socket.bytesRead)
    return counts
  },
  sentSince: (before) => {
    for (const socket of sockets) if (socket.bytesRead > (before.get(socket) ?? 0)) return true
    return false
  }
})

/** @internal */
export const make = (options: Node.Options): Effect.Effect<Node.Node, SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    const prepare = options.prepare ?? true
    const spanAttributes = {
      ...options.spanAttributes,
      "effect_sql_router.node": options.id,
      "effect_sql_router.role": options.role
    }
    const config = poolConfig(options, prepare, spanAttributes, socketFactory(options.url, sockets))
    const openPool = poolOpener(config, yield* Effect.scope)
    const [pool, firstScope] = yield* openPool({})
    let poolScope = firstScope
    let current: Partial<PoolSettings> = {
      maxSize: options.maxSize,
      minSize: options.minSize ?? 0,
      multiplex: options.multiplex ?? false,
      multiplexConcurrency: options.multiplexConcurrency ?? 32,
      prepare
    }
    const readOnly = () => node.role === "replica"
    const { compiler, transformRows } = transformsOf(options)
    const borrow: Connection.Borrower = (f) => own.pool.use((session) => f(connectionOf(session, own.prepare)))
    const acquirer = Effect.suspend(() => Effect.map(own.pool.get, (session) => connectionOf(session, own.prepare)))
    const transactionAcquirer = Effect.suspend(() =>
      Effect.map(own.pool.reserve, (session) => connectionOf(session, own.prepare))
    )
    const reactivity = yield* Effect.serviceOption(Reactivity.Reactivity)
    const sqlClient = yield* SqlClient.make({
      driver: "pg",
      acquirer,
      borrower: borrow,
      transactionAcquirer,
      compiler,
      transformRows,
      prepareTransactionControls: prepare,
      begin: begin(readOnly),
      commit,
      onCommitFailure,
      isTransaction,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      spanAttributes: [
        ...Object.entries(spanAttributes),
        ["db.system.name", "postgresql"]
      ]
    }).pipe(
      reactivity._tag === "Some"
        ? Effect.provideService(Reactivity.Reactivity, reactivity.value)
        : Effect.provide(Reactivity.layer)
    )
    const client: PgClient.PgClient = Object.assign(sqlClient, {
      [PgClient.TypeId]: PgClient.TypeId,
      config,
      poolStats: Effect.suspend(() => own.pool.stats),
      json,
      listen: (channel: string) => Effect.flatMap(own.pool.reserve, (session) => session.listen(channel)),
      notify: (channel: string, payload: string) =>
        Effect.asVoid(own.pool.use((session) => session.query("SELECT pg_notify($1, $2)", [channel, payload], false)))
    }) as unknown as PgClient.PgClient
    const served = { reads: 0, writes: 0 }
    const node: Node.Node = {
      id: options.id,
      role: options.role,
      address: addressOf(options.url),
      url: options.url,
      direct: options.direct,
      client,
      served,
      stats: Effect.suspend(() =>
        Effect.map(own.pool.stats, (stats) => ({
          total: stats.idle + stats.used,
          idle: stats.idle,
          inUse: stats.used,
          waiting: stats.pending,
          max: own.max
        }))
      )
    }
    Object.defineProperties(node, display)
    const own: NodeInternals = {
      pool,
      max: options.maxSize,
      prepare,
      failures: 0,
      severs: 0,
      ...trafficOf(sockets),
      sever: () => {
        own.severs++
        for (const socket of sockets) socket.destroy()
      },
      reconfigure: (settings) => {
        if (sameSettings(current, settings)) return Effect.void
        return Effect.flatMap(openPool(settings), ([next, nextScope]) => {
          const [previousPool, previousScope] = [own.pool, poolScope]
          own.pool = next
          own.max = settings.maxSize
          own.prepare = settings.prepare
          poolScope = nextScope
          current = settings
          // New statements take the new pool. The old one closes once nothing
          // runs or waits on it (closing a pool interrupts the fibers waiting
          // for one of its sessions), at the latest after a minute; nobody
          // waits for that.
          const drained = previousPool.stats.pipe(
            Effect.repeat({ until: (stats) => stats.used === 0 && stats.pending === 0, schedule: Schedule.spaced("100 millis") }),
            Effect.timeoutOption("1 minute")
          )
          return Effect.asVoid(Effect.forkDetach(Effect.andThen(drained, Scope.close(previousScope, Exit.void))))
        })
      }
    }
    internals.set(node, own)
    return node
  })

/**
 * A routed statement met a connection-class failure on `node`: counted for
 * its health watcher (a node the router did not make is not counted).
 * @internal
 */
export const countFailure = (node: Node.Node): void => {
  const own = internals.get(node)
  if (own !== undefined) own.failures++
}

/** Connection-class failures counted on `node` so far. @internal */
export const failuresOf = (node: Node.Node): number => internals.get(node)?.failures ?? 0

/** After a failover or promotion: the node's role as last discovered. @internal */
export const setRole = (node: Node.Node, role: Node.Role): void => {
  ;(node as { role: Node.Role }).role = role
}

// What a node shows when logged, inspected, stringified or turned into JSON:
// never its pool or client, whose options hold the connection string (and so
// the password).
const shown = (node: Node.Node) => ({ _id: "Node", id: node.id, role: node.role, address: node.address })
const display: PropertyDescriptorMap = {
  toJSON: { value(this: Node.Node) { return shown(this) } },
  toString: { value(this: Node.Node) { return `Node(${this.id}, ${this.role}, ${this.address})` } },
  [NodeInspectSymbol]: { value(this: Node.Node) { return shown(this) } }
}

/** Whether the node's pool has no session to spare (`primaryReads: "overflow"`). @internal */
export const isBusy = (node: Node.Node): Effect.Effect<boolean> =>
  Effect.map(internals.get(node)!.pool.stats, (stats) => stats.idle === 0 && stats.used >= stats.max)

const sameSettings = (a: Partial<PoolSettings>, b: PoolSettings): boolean =>
  a.maxSize === b.maxSize && a.minSize === b.minSize && a.multiplex === b.multiplex &&
  a.multiplexConcurrency === b.multiplexConcurrency && a.prepare === b.prepare

/** A node's pool remade with a role's settings (a node the router did not make is left alone). @internal */
export const reconfigure = (node: Node.Node, settings: PoolSettings): Effect.Effect<void, SqlError> => {
  const own = internals.get(node)
  return own === undefined ? Effect.void : own.reconfigure(settings)
}

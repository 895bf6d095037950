/** @internal */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import { NodeInspectSymbol } from "effect/Inspectable"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import Pg from "pg"
import type * as Node from "../Node.js"
import type { ValidationConnection } from "../RouterConfig.js"
import { addressOf, isPostgresUrl } from "./connectionString.js"
import * as Dedicated from "./dedicated.js"
import { isConnectionError } from "./errors.js"
import { field, makeClient, transformsOf } from "./routedClient/assembly.js"

type Callback = (err: Error | undefined, client: Pg.PoolClient | undefined, release: (err?: Error | boolean) => void) => void

/**
 * A pool that runs the user's `validate` on every checkout and discards the
 * connections that fail it. Subclassing keeps every consumer of the pool
 * (PgClient, the lean connection, `pool.query`) behind the same check.
 */
class ValidatingPool extends Pg.Pool {
  constructor(
    config: Pg.PoolConfig,
    private readonly check: (connection: ValidationConnection) => Promise<boolean>
  ) {
    super(config)
  }

  override connect(): Promise<Pg.PoolClient>
  override connect(callback: Callback): void
  override connect(callback?: Callback): Promise<Pg.PoolClient> | void {
    if (!callback) {
      return new Promise((resolve, reject) =>
        this.connect((err, client) => (err || !client ? reject(err) : resolve(client)))
      )
    }
    const attempt = (left: number): void => {
      super.connect((err: Error | undefined, client: Pg.PoolClient | undefined, release: (err?: Error | boolean) => void) => {
        if (err || !client) return callback(err ?? new Error("No client returned"), undefined, release)
        this.check({ query: (sql) => client.query(sql).then((result) => result.rows) }).then(
          (ok) => {
            if (ok) return callback(undefined, client, release)
            release(new Error("connection failed validation"))
            if (left > 0) return attempt(left - 1)
            callback(new Error("no connection passed validation"), undefined, () => {})
          },
          (cause: Error) => {
            release(cause)
            if (left > 0) return attempt(left - 1)
            callback(cause, undefined, () => {})
          }
        )
      })
    }
    attempt(this.options.max ?? 10)
  }
}

/**
 * A client whose opening (connect, TLS, authentication) is bounded by
 * `connectTimeout`. The pool's own `connectionTimeoutMillis` would also bound
 * a wait for a free connection of a full pool; that wait is bounded by
 * `readTimeout` and `writeTimeout` instead, as in the Effect 4 line (a fleet
 * that takes load at once after idling queues on two cores for longer than
 * it takes to open one connection). Its timeout reads as pg-pool's, which
 * `PgErrors.isConnectTimeout` knows.
 */
const connectBounded = (connectMillis: number, clients: Set<Pg.Client>) =>
  class ConnectBoundedClient extends Pg.Client {
    constructor(config?: Pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: connectMillis })
      // The node's live connections, for `sever`: each leaves the set when it ends.
      clients.add(this)
      this.once("end", () => clients.delete(this))
    }
    override connect(): Promise<Pg.Client>
    override connect(callback: (err: Error) => void): void
    override connect(callback?: (err: Error) => void): Promise<Pg.Client> | void {
      if (callback === undefined) {
        return new Promise((resolve, reject) => this.connect((err) => (err ? reject(err) : resolve(this))))
      }
      super.connect((err: Error) =>
        callback(
          err?.message === "timeout expired"
            ? new Error("Connection terminated due to connection timeout", { cause: err })
            : err
        )
      )
    }
  }

const acquireFailed = (cause: unknown) => new SqlError({ cause, message: "Failed to acquire connection" })
const executeFailed = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

/** @internal */
export const failed = (error: Error, acquired: boolean): SqlError => acquired ? executeFailed(error) : acquireFailed(error)

/**
 * One statement on a pooled connection, at the driver's level: what
 * cancellation needs to find it. `abandoned` means nobody waits for the
 * answer any more (interruption, read timeout).
 * @internal
 */
export class Running {
  client: Pg.PoolClient | undefined = undefined
  settled = false
  abandoned = false
  /** A CancelRequest went out for it: if the statement beat it, it may hit the connection's next one. */
  cancelSent = false
  constructor(readonly pool: Pg.Pool) {}
}

// A node's pool can be severed, as the Effect 4 line severs a node's
// sockets: when the primary changes, what still runs on the old one is cut
// (see `sever`). The pool carries its cut: its live connections and how
// often it was severed, which a statement reads when it starts so that one
// begun before a cut and given a session after it fails as the cut ones did.

interface Cut {
  severs: number
  readonly clients: Set<Pg.Client>
}

const cutKey = Symbol.for("effect-sql-router/Node/cut")

type Cuttable = Pg.Pool & { [cutKey]?: Cut }

/** How often `node` was severed (0 for a node the router did not make). @internal */
export const seversOf = (node: Node.Node): number => (node.pool as Cuttable)[cutKey]?.severs ?? 0

/**
 * Drops every connection of `node` in use now: statements on them fail with
 * a connection error, and so do statements begun before the cut that get
 * their session after it. The pool opens new connections when the node is used
 * again. A node not made by `make` (a stub in a test) has none.
 * @internal
 */
export const sever = (node: Node.Node): void => {
  const cut = (node.pool as Cuttable)[cutKey]
  if (cut === undefined) return
  cut.severs++
  // Idle connections run nothing and stay (a statement begun before the cut
  // that takes one fails by the count): dropped, they would be handed out
  // before the pool saw them close. pg-pool keeps them in `_idle`; without
  // it, every connection goes.
  const idle = new Set((node.pool as { _idle?: ReadonlyArray<{ client: Pg.Client }> })._idle?.map((item) => item.client))
  for (const client of cut.clients) if (!idle.has(client)) Dedicated.destroy(client)
}

const severedBefore = () =>
  new Error("the node's connections were severed (it stopped being the primary) before this statement was sent")

/** @internal */
export type Done = (error: Error | undefined, result: Pg.QueryResult | undefined, acquired: boolean) => void

const abandonedBeforeStart = new Error("abandoned before it started")

/**
 * Checks out a connection, runs one statement on it and gives it back when
 * the server answers; `done` is called exactly once. A connection that breaks
 * under the statement is destroyed, not returned.
 * @internal
 */
export const start = (
  pool: Pg.Pool,
  text: string,
  params: ReadonlyArray<unknown>,
  rowMode: boolean,
  done: Done
): Running => {
  const running = new Running(pool)
  const cut = (pool as Cuttable)[cutKey]
  const severs = cut === undefined ? 0 : cut.severs
  pool.connect((err, client, release) => {
    if (err || !client) {
      running.settled = true
      return done(err ?? new Error("No client returned"), undefined, false)
    }
    if (running.abandoned) {
      release()
      running.settled = true
      return done(abandonedBeforeStart, undefined, false)
    }
    if (cut !== undefined && cut.severs !== severs) {
      release()
      running.settled = true
      return done(severedBefore(), undefined, false)
    }
    running.client = client
    // A checked-out client has no listener of the pool's: without ours, a
    // connection that dies under the query (server killed) would be an
    // uncaught 'error'.
    const settle = (error: Error | null, result?: Pg.QueryResult) => {
      if (running.settled) return
      running.settled = true
      running.client = undefined
      client.off("error", settle)
      release(
        error && isConnectionError(error)
          ? error
          // Cancelled, but it answered otherwise: the cancel is still on its
          // way and would cancel whatever this connection runs next.
          : running.cancelSent && (error as { code?: string } | null)?.code !== "57014"
          ? true
          : undefined
      )
      done(error ?? undefined, result, true)
    }
    client.on("error", settle)
    if (rowMode) client.query({ text, values: params as Array<unknown>, rowMode: "array" }, settle)
    else client.query(text, params as Array<unknown>, settle)
  })
  return running
}

/**
 * Nobody waits for the statement any more: ask the server to cancel it
 * (`Dedicated.cancel`). Best effort; the connection goes back to the pool
 * when the server answers (with 57014 query_canceled).
 * @internal
 */
export const abandon = (running: Running): void => {
  running.abandoned = true
  const client = running.client
  if (client === undefined || running.settled || running.pool.ending) return
  const target = client as unknown as {
    _getActiveQuery?: () => unknown
    _activeQuery?: unknown
    processID: number
    secretKey: number
  }
  // (`activeQuery` itself is deprecated in pg 8.23; pg's own `cancel` reads it.)
  const active = target._getActiveQuery ? target._getActiveQuery() : target._activeQuery
  // A query still queued would be dropped from the queue, and its callback with it.
  if (active === undefined || active === null) return
  running.cancelSent = true
  Dedicated.cancel(running.pool, target)
}

/**
 * What each fiber is waiting for, so that its interruption can cancel it: a
 * slot on the fiber itself (a WeakMap keyed by short-lived fibers costs the
 * garbage collector an ephemeron per statement).
 */
const slotKey = Symbol.for("effect-sql-router/Node/waiting")

interface Slot {
  current: Running | undefined
}

type Watched = Fiber.RuntimeFiber<unknown, unknown> & { [slotKey]?: Slot }

/**
 * Registers `running` as what `fiber` waits for. No per-statement canceler
 * (Effect would wrap each statement in `onInterrupt`): one observer per fiber
 * cancels what it still waits for when it exits, and a fiber that starts a
 * statement while an earlier one never answered it was interrupted out of it.
 * @internal
 */
export const watch = (fiber: Fiber.RuntimeFiber<unknown, unknown>, running: Running): void => {
  const watched = fiber as Watched
  const slot = watched[slotKey]
  if (slot === undefined) {
    const created: Slot = { current: running }
    watched[slotKey] = created
    fiber.addObserver(() => {
      const left = created.current
      if (left !== undefined && !left.settled) abandon(left)
    })
    return
  }
  const previous = slot.current
  if (previous !== undefined && !previous.settled && !previous.abandoned) abandon(previous)
  slot.current = running
}

/**
 * One statement as one `Effect.async` with no canceler; interruption cancels
 * it on the server through `watch`.
 * @internal
 */
export const runQuery = <A>(
  pool: Pg.Pool,
  text: string,
  params: ReadonlyArray<unknown>,
  rowMode: boolean,
  map: (result: Pg.QueryResult) => A
): Effect.Effect<A, SqlError> =>
  Effect.withFiberRuntime<A, SqlError>((fiber) =>
    Effect.async<A, SqlError>((resume) => {
      watch(
        fiber,
        start(pool, text, params, rowMode, (error, result, acquired) =>
          resume(error ? Effect.fail(failed(error, acquired)) : Effect.succeed(map(result!))))
      )
    })
  )

/** @internal */
export const rowsOf = (result: Pg.QueryResult): ReadonlyArray<any> =>
  // Several statements in one text give an array of results.
  Array.isArray(result) ? result.map((r: Pg.QueryResult) => r.rows ?? []) : result.rows ?? []
const resultOf = (result: Pg.QueryResult) => result
const valuesOf = (result: Pg.QueryResult): ReadonlyArray<ReadonlyArray<unknown>> => result.rows

/** @internal */
export const leanConnection = (pool: Pg.Pool, client: SqlClient.SqlClient): Connection.Connection => {
  const execute = (
    sql: string,
    params: ReadonlyArray<unknown>,
    transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  ) =>
    transformRows
      ? runQuery(pool, sql, params, false, (r) => transformRows(rowsOf(r)))
      : runQuery(pool, sql, params, false, rowsOf)
  return {
    execute,
    executeUnprepared: execute,
    executeRaw: (sql, params) => runQuery(pool, sql, params, false, resultOf),
    executeValues: (sql, params) => runQuery(pool, sql, params, true, valuesOf),
    // Streams hold a connection for their whole life: use the client's cursor support.
    executeStream: (sql, params, transformRows) =>
      Stream.unwrapScoped(
        Effect.map(client.reserve, (connection) => connection.executeStream(sql, params, transformRows))
      )
  }
}

/** Connection strings are parsed in one place. @internal */
export { addressOf, isPostgresUrl }

/** @internal */
export const make = (options: Node.Options): Effect.Effect<Node.Node, never, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const cut: Cut = { severs: 0, clients: new Set() }
    const config: Pg.PoolConfig = {
      connectionString: Redacted.value(options.url),
      max: options.maxSize,
      min: options.minSize ?? 0,
      // Not the pool's connectionTimeoutMillis: see connectBounded.
      Client: connectBounded(Duration.toMillis(options.connectTimeout), cut.clients),
      idleTimeoutMillis: Duration.toMillis(options.idleTimeout),
      application_name: options.applicationName,
      ...(options.types ? { types: options.types } : {})
    }
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = options.validate ? new ValidatingPool(config, options.validate) : new Pg.Pool(config)
        // Idle connections that die (server restart) emit here; the pool drops them.
        pool.on("error", () => {})
        ;(pool as Cuttable)[cutKey] = cut
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption("2 seconds"))
    )
    // The driver's client: dedicated connections (`reserve`), LISTEN/NOTIFY
    // and `config`; its own statements and transactions go unused.
    const driver = yield* PgClient.fromPool({
      acquire: Effect.succeed(pool),
      applicationName: options.applicationName,
      types: options.types
    }).pipe(Effect.orDie)
    const connection = leanConnection(pool, driver)
    // The node's client, from the router's one client maker: statements as
    // one operation each on the pool, and our transactions (typed COMMIT
    // failures, BEGIN READ ONLY while the node is a replica, so a replica can
    // never hold a writable transaction connection).
    const client = makeClient({
      reactivity: yield* Reactivity.Reactivity,
      acquirer: Effect.succeed(connection),
      reserve: driver.reserve,
      ...transformsOf(options),
      // As `PgClient`'s own spans were.
      spanAttributes: [
        ...Object.entries(options.spanAttributes ?? {}),
        ["effect_sql_router.node", options.id],
        ["effect_sql_router.role", options.role],
        ["db.system.name", "postgresql"],
        ["db.namespace", driver.config.database ?? driver.config.username ?? "postgres"],
        ["server.address", driver.config.host ?? "localhost"],
        ["server.port", driver.config.port ?? 5432]
      ],
      transactions: { node: () => options.id, readOnly: () => node.role === "replica", reserve: driver.reserve },
      pg: {
        config: field(driver.config),
        json: field(driver.json),
        listen: field(driver.listen),
        notify: field(driver.notify)
      }
    })
    const served = { reads: 0, writes: 0 }
    const node: Node.Node = {
      id: options.id,
      role: options.role,
      address: addressOf(options.url),
      url: options.url,
      direct: options.direct,
      pool,
      client,
      connection,
      served,
      stats: () => ({
        total: pool.totalCount,
        idle: pool.idleCount,
        inUse: pool.totalCount - pool.idleCount,
        waiting: pool.waitingCount,
        max: pool.options.max ?? options.maxSize
      })
    }
    Object.defineProperties(node, display)
    return node
  })

/** Connection-class failures routed statements met, per node (a node that never failed has no entry). */
const failures = new WeakMap<Node.Node, { count: number }>()

/**
 * A routed statement met a connection-class failure on `node`: counted for
 * its health watcher.
 * @internal
 */
export const countFailure = (node: Node.Node): void => {
  const counter = failures.get(node)
  if (counter === undefined) failures.set(node, { count: 1 })
  else counter.count++
}

/** Connection-class failures counted on `node` so far. @internal */
export const failuresOf = (node: Node.Node): number => failures.get(node)?.count ?? 0

/** After a failover or promotion: the node's role as last discovered. @internal */
export const setRole = (node: Node.Node, role: Node.Role): void => {
  ;(node as { role: Node.Role }).role = role
}

// What a node shows when logged, inspected, stringified or turned into JSON:
// never its pool or clients, whose options hold the connection string (and
// so the password) in plain text.
const shown = (node: Node.Node) => ({ _id: "Node", id: node.id, role: node.role, address: node.address })
const display: PropertyDescriptorMap = {
  toJSON: { value(this: Node.Node) { return shown(this) } },
  toString: { value(this: Node.Node) { return `Node(${this.id}, ${this.role}, ${this.address})` } },
  [NodeInspectSymbol]: { value(this: Node.Node) { return shown(this) } }
}

/** @internal */
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { NodeInspectSymbol } from "effect/Inspectable"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import Pg from "pg"
import type * as Node from "../Node.js"
import type { ValidationConnection } from "../RouterConfig.js"
import { addressOf, isPostgresUrl } from "./connectionString.js"
import { isConnectionError } from "./errors.js"
import * as Transaction from "./transaction.js"

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

const acquireFailed = (cause: unknown) => new SqlError({ cause, message: "Failed to acquire connection" })
const executeFailed = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

/**
 * Runs one query on a pooled connection and gives it back. Interruption
 * while the query runs asks the server to cancel it (best effort); the
 * connection returns to the pool when the server answers.
 */
const runQuery = <A>(
  pool: Pg.Pool,
  config: string | Pg.QueryArrayConfig,
  params: ReadonlyArray<unknown>,
  map: (result: Pg.QueryResult) => A
): Effect.Effect<A, SqlError> =>
  Effect.async<A, SqlError>((resume) => {
    let interrupted = false
    let pid: number | undefined
    pool.connect((err, client, release) => {
      if (err || !client) return resume(Effect.fail(acquireFailed(err ?? new Error("No client returned"))))
      if (interrupted) return release()
      pid = (client as unknown as { processID?: number }).processID
      let settled = false
      // A checked-out client has no listener of the pool's: without ours, a
      // connection that dies under the query (server killed) would be an
      // uncaught 'error'.
      const settle = (error: Error | null, result?: Pg.QueryResult) => {
        if (settled) return
        settled = true
        client.off("error", settle)
        // A broken connection is destroyed, not returned to the pool.
        release(error && isConnectionError(error) ? error : undefined)
        if (interrupted) return
        if (error) resume(Effect.fail(executeFailed(error)))
        else resume(Effect.succeed(map(result!)))
      }
      client.on("error", settle)
      client.query(config as string, params as Array<unknown>, settle)
    })
    return Effect.sync(() => {
      interrupted = true
      if (pid !== undefined && !pool.ending) pool.query(`SELECT pg_cancel_backend(${pid})`, () => {})
    })
  })

const rowsOf = (result: Pg.QueryResult): ReadonlyArray<any> =>
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
  ) => transformRows ? runQuery(pool, sql, params, (r) => transformRows(rowsOf(r))) : runQuery(pool, sql, params, rowsOf)
  return {
    execute,
    executeUnprepared: execute,
    executeRaw: (sql, params) => runQuery(pool, sql, params, resultOf),
    executeValues: (sql, params) => runQuery(pool, { text: sql, rowMode: "array" }, params, valuesOf),
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
    const config: Pg.PoolConfig = {
      connectionString: Redacted.value(options.url),
      max: options.maxSize,
      connectionTimeoutMillis: Duration.toMillis(options.connectTimeout),
      idleTimeoutMillis: Duration.toMillis(options.idleTimeout),
      application_name: options.applicationName
    }
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = options.validate ? new ValidatingPool(config, options.validate) : new Pg.Pool(config)
        // Idle connections that die (server restart) emit here; the pool drops them.
        pool.on("error", () => {})
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption("2 seconds"))
    )
    const client = yield* PgClient.fromPool({
      acquire: Effect.succeed(pool),
      applicationName: options.applicationName,
      spanAttributes: { "db.router.node": options.id, "db.router.role": options.role }
    }).pipe(Effect.orDie)
    // Our transactions: typed COMMIT failures, and BEGIN READ ONLY on replicas so
    // a replica can never hold a writable transaction connection.
    ;(client as { withTransaction: SqlClient.SqlClient["withTransaction"] }).withTransaction = Transaction
      .asSqlClientTransaction({
        node: () => options.id,
        readOnly: () => node.role === "replica",
        reserve: client.reserve
      })
    const served = { reads: 0, writes: 0 }
    const node: Node.Node = {
      id: options.id,
      role: options.role,
      address: addressOf(options.url),
      url: options.url,
      pool,
      client,
      connection: leanConnection(pool, client),
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

/**
 * What every backend of the cluster harness shares: the `Driver` a backend
 * provides, nodes, one-shot queries, waiting for a server and the live clock.
 * @internal
 */
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as PgTypes from "@effect/sql-pg/PgTypes"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { Backend, ClusterNode, Role } from "../PgCluster.js"
import { ClusterError } from "../PgCluster.js"
import * as Process from "@effect-sql-router/core/embedded/Process"
import * as Lsn from "@effect-sql-router/core/Lsn"
import { describe } from "@effect-sql-router/core/PgErrors"
import * as Result from "effect/Result"

/**
 * What differs between backends: how servers are started, stopped and
 * signalled. Everything said in SQL (replay, promotion, waiting) is shared.
 * @internal
 */
export interface Driver {
  readonly backend: Backend
  readonly directory: string | undefined
  readonly nodes: Array<ClusterNode>
  readonly stop: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly start: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly kill: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly freeze: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly thaw: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Running, not frozen: a node that can answer SQL. */
  readonly isUp: (node: ClusterNode) => boolean
  readonly addReplica: (primary: ClusterNode) => Effect.Effect<ClusterNode, ClusterError>
  /** Stops the node and starts it as a standby of `primary`, data as it is. */
  readonly restartAsStandby: (node: ClusterNode, primary: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Stops the node, re-clones it from `primary` and starts it as its standby. */
  readonly rejoinAsStandby: (node: ClusterNode, primary: ClusterNode) => Effect.Effect<void, ClusterError>
}

/** A `ClusterError` of `operation`, naming the node when there is one. @internal */
export const fail = (operation: string, node: ClusterNode | undefined, reason: string, cause?: unknown) =>
  new ClusterError({
    operation,
    reason,
    ...(node ? { node: node.name } : {}),
    ...(cause === undefined ? {} : { cause })
  })

/** @internal */
export const makeNode = (name: string, role: Role, host: string, port: number, user = "postgres", database = "postgres"): ClusterNode => ({
  name,
  role,
  host,
  port,
  user,
  database,
  url: Redacted.make(`postgres://${user}@${host}:${port}/${database}`)
})

/** @internal */
export const nodeFromUrl = (name: string, role: Role, url: string): ClusterNode => {
  const parsed = new URL(url)
  return {
    name,
    role,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username || "postgres"),
    database: decodeURIComponent(parsed.pathname.slice(1) || "postgres"),
    url: Redacted.make(url)
  }
}

const pgLsnOid = 3220

/**
 * `pg_lsn` as the text PostgreSQL prints (`16/B374D848`), as `pg` gave it:
 * the native driver reads results in binary and has no codec for it (the
 * 8-byte position would fail the row). The harness reads positions (backups,
 * `pg_current_wal_lsn()`), and so may its users' queries.
 */
const pgLsn: PgTypes.Codec<string> = {
  decode: (bytes) =>
    bytes.byteLength === 8
      ? Result.succeed(Lsn.formatLsn(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0)))
      : Result.fail(new PgTypes.CodecError({ message: `pg_lsn must be 8 bytes, got ${bytes.byteLength}` })),
  encode: (text) => {
    const lsn = Lsn.parseLsn(text)
    if (lsn === undefined) return Result.fail(new PgTypes.CodecError({ message: "pg_lsn must be written X/Y in hexadecimal" }))
    const bytes = new Uint8Array(8)
    new DataView(bytes.buffer).setBigUint64(0, lsn)
    return Result.succeed(bytes)
  }
}

const types = PgTypes.makeRegistry()
types.register(pgLsnOid, pgLsn)

/** A connection of the harness's own to `node`, closed with the scope. @internal */
export const connect = (node: ClusterNode, connectTimeout: Duration.Input = "5 seconds") =>
  PgConnection.make({ url: node.url, connectTimeout, applicationName: "pg-cluster-harness", types })

/** @internal */
export const queryNode = <A>(
  node: ClusterNode,
  sql: string,
  params: ReadonlyArray<unknown> = [],
  timeoutMs = 5_000
): Effect.Effect<ReadonlyArray<A>, ClusterError> =>
  // One connection per call: the harness must work while nodes die and come
  // back, so it never holds on to a connection. Interruption (e.g. a timeout
  // around a frozen server) closes it at once. Not prepared: it runs once.
  Effect.scoped(
    Effect.flatMap(connect(node, Duration.millis(timeoutMs)), (connection) => connection.query(sql, params, false))
  ).pipe(
    Effect.map((result) => result.rows as ReadonlyArray<A>),
    Effect.mapError((cause) => fail("query", node, `${sql.slice(0, 80)}: ${describe(cause)}`, cause))
  )

/** Polls until a connection and `SELECT 1` succeed, or the process dies. @internal */
export const awaitReady = (node: ClusterNode, alive: () => boolean, logFile: string | undefined, timeout: Duration.Input) =>
  Effect.gen(function*() {
    for (;;) {
      if (!alive()) {
        return yield* fail("start", node, `the server exited${logFile ? `:\n${Process.tail(logFile)}` : ""}`)
      }
      const ok = yield* queryNode(node, "SELECT 1", [], 1_000).pipe(
        Effect.as(true),
        Effect.catch(() => Effect.succeed(false))
      )
      if (ok) return
      yield* Effect.sleep("25 millis")
    }
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          fail("start", node, `not accepting connections after ${formatDuration(timeout)}${logFile ? `:\n${Process.tail(logFile)}` : ""}`)
        )
    })
  )

/** `5s`, for a reason. @internal */
export const formatDuration = (duration: Duration.Input) => Duration.format(Duration.fromInputUnsafe(duration))

// The harness waits on real servers: it keeps real time even when the caller
// runs under TestClock.
const liveClock = Clock.Clock.defaultValue()
/** @internal */
export const live = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Clock.Clock, liveClock)

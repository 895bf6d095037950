/**
 * What every backend of the cluster harness shares: the `Driver` a backend
 * provides, nodes, one-shot queries, waiting for a server and the live clock.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import Pg from "pg"
import type { Backend, ClusterNode, Role } from "../PgCluster.js"
import { ClusterError } from "../PgCluster.js"
import * as Process from "@effect-sql-router/core/embedded/Process"

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

/** @internal */
export const queryNode = <A>(
  node: ClusterNode,
  sql: string,
  params: ReadonlyArray<unknown> = [],
  timeoutMs = 5_000
): Effect.Effect<ReadonlyArray<A>, ClusterError> =>
  Effect.tryPromise({
    // One connection per call: the harness must work while nodes die and
    // come back, so it never holds on to a connection. Interruption (e.g. a
    // timeout around a frozen server) closes it at once.
    try: async (signal) => {
      const client = new Pg.Client({
        connectionString: Redacted.value(node.url),
        connectionTimeoutMillis: timeoutMs,
        application_name: "pg-cluster-harness"
      })
      client.on("error", () => {})
      const close = () => void client.end().catch(() => {})
      signal.addEventListener("abort", close)
      try {
        await client.connect()
        return (await client.query(sql, params as Array<unknown>)).rows as ReadonlyArray<A>
      } finally {
        signal.removeEventListener("abort", close)
        close()
      }
    },
    catch: (cause) => fail("query", node, `${sql.slice(0, 80)}: ${String((cause as Error)?.message ?? cause)}`, cause)
  })


/** Polls until a connection and `SELECT 1` succeed, or the process dies. @internal */
export const awaitReady = (node: ClusterNode, alive: () => boolean, logFile: string | undefined, timeout: Duration.DurationInput) =>
  Effect.gen(function*() {
    for (;;) {
      if (!alive()) {
        return yield* fail("start", node, `the server exited${logFile ? `:\n${Process.tail(logFile)}` : ""}`)
      }
      const ok = yield* queryNode(node, "SELECT 1", [], 1_000).pipe(
        Effect.as(true),
        Effect.catchAll(() => Effect.succeed(false))
      )
      if (ok) return
      yield* Effect.sleep("25 millis")
    }
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        fail("start", node, `not accepting connections after ${Duration.format(timeout)}${logFile ? `:\n${Process.tail(logFile)}` : ""}`)
    })
  )

// The harness waits on real servers: it keeps real time even when the caller
// runs under TestClock.
const liveClock = Clock.make()
/** @internal */
export const live = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withClock(effect, liveClock)

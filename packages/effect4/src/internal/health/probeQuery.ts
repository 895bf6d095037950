/** @internal */
// One probe statement on a node: on a pooled connection or one of its own, bounded in real time.
import * as PgConnection from "@effect/sql-pg/PgConnection"
import type * as PgPool from "@effect/sql-pg/PgPool"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Pool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as Probing from "@effect-sql-router/core/Probing"
import type * as Node from "../../Node.js"
import { isConnectTimeout } from "../errors.js"
import * as NodeInternal from "../node.js"
import * as Catalog from "./catalog.js"

// -----------------------------------------------------------------------------
// One probe statement
// -----------------------------------------------------------------------------

/**
 * A probe that timed out for want of room, not of an answer: its checkout
 * waited in a pool whose sessions other work holds, or the server answered
 * its own connection's login without finishing it in time (a crowded host).
 * It says nothing against the server. @internal
 */
export class PoolBusy extends Error {
  constructor(message = "every pooled connection is busy") {
    super(message)
  }
}

/** A probe that got no answer within its timeout. @internal */
export class ProbeTimedOut extends Error {
  constructor(timeout: Duration.Duration) {
    super(`probe timed out after ${Duration.format(timeout)}`)
  }
}

/**
 * A probe that ran out of time: its own timeout, or a connect timeout on the
 * way (the pool's, when its checkout had to open a connection; the driver's
 * backstop on a connection of its own). Seen in the many-instances bench: a
 * probe that failed with the driver's connect timeout while the server
 * answered other sessions took a crowded replica out of rotation.
 */
const timedOut = (error: unknown): boolean => error instanceof ProbeTimedOut || isConnectTimeout(error)

/** A `PoolBusy` for a failure `Probing.crowded` gives no verdict on, else the failure. */
const busyOr = (error: unknown, failure: Omit<Probing.ProbeFailure, "timedOut">): unknown => {
  const reason = Probing.crowded({ ...failure, timedOut: timedOut(error) })
  return reason === undefined ? error : new PoolBusy(reason)
}

/** Real time, whatever clock the fiber runs on (`TestClock` included). @internal */
export const liveClock = Clock.Clock.defaultValue()

/**
 * `effect` bounded by `timeout` in real time. It runs in a fiber of its own,
 * which a timeout interrupts without waiting for it: a statement on a frozen
 * server drains (and is cancelled) in the background, up to the driver's own
 * bound, while the probe reports its timeout now.
 * @internal
 */
export const within = <A, E>(
  effect: Effect.Effect<A, E>,
  timeout: Duration.Duration,
  onTimeout: () => Effect.Effect<never, unknown>
): Effect.Effect<A, unknown> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.forkDetach(effect, { startImmediately: true }), (fiber) =>
      Effect.onExit(
        restore(Effect.timeoutOrElse(Fiber.join(fiber), { duration: timeout, orElse: onTimeout })),
        () =>
          Effect.sync(() => {
            if (fiber.pollUnsafe() === undefined) fiber.interruptUnsafe()
          })
      ))
  ).pipe(Effect.provideService(Clock.Clock, liveClock))

/**
 * Whether a checkout now would wait behind the application: every session is
 * taken and the pool cannot grow, or checkouts already wait. A multiplexed
 * pool lends a session that carries other statements, and a statement
 * pipelined behind a long one waits for it: any session in use counts.
 */
const crowded = (stats: Pool.Stats, multiplex: boolean): boolean =>
  stats.pending > 0 || (multiplex ? stats.used > 0 : stats.idle === 0 && stats.used >= stats.max)

/**
 * One statement on a connection of the node's pool (an idle one, or a short
 * checkout), bounded by the timeout. A checkout that did not arrive in time
 * while the pool stayed crowded is `PoolBusy`: it says nothing of the server.
 */
const pooledQuery = <A>(pool: PgPool.PgPool, prepare: boolean, timeout: Duration.Duration, sql: string) =>
  Effect.suspend(() => {
    let checkedOut = false
    const run = pool.use((connection) => {
      checkedOut = true
      return Effect.map(connection.query(sql, [], prepare), (result) => result.rows[0] as A)
    })
    return within(run, timeout, () =>
      Effect.flatMap(pool.stats, (stats) =>
        Effect.fail(
          !checkedOut && crowded(stats, pool.config.multiplex ?? false) ? new PoolBusy() : new ProbeTimedOut(timeout)
        )))
  })

/**
 * One statement on a connection of its own, bounded by `timeout` (connecting
 * included), its first row. The connection is closed when the statement
 * ends, timeout or not: one to a frozen server is destroyed, not drained.
 * @internal
 */
export const connectionQuery = <A>(
  config: PgConnection.Config,
  timeout: Duration.Duration,
  sql: string,
  onConnected?: () => void
): Effect.Effect<A, unknown> =>
  Effect.scoped(Effect.flatMap(Effect.scope, (scope) =>
    within(
      Effect.flatMap(
        // The driver's own bound is a backstop: `timeout` below is the one that tells.
        Scope.provide(
          PgConnection.make({ ...config, connectTimeout: Duration.times(timeout, 2), multiplex: false, prepare: false }),
          scope
        ),
        (connection) => {
          onConnected?.()
          return Effect.map(connection.query(sql, [], false), (result) => result.rows[0] as A)
        }
      ),
      timeout,
      () => Effect.fail(new ProbeTimedOut(timeout))
    )))

/**
 * A probe of a node whose pool is crowded, where a checkout would wait behind
 * the application (long statements on every connection look like a frozen
 * server from inside the pool): one statement on a connection of the pool's
 * kind (same server, credentials, TLS, socket factory) named
 * `<application>:probe`, closed at once.
 */
const ownQuery = <A>(pool: PgPool.PgPool, timeout: Duration.Duration, sql: string) =>
  Effect.suspend(() => {
    // A server that answered the login but had not finished it in time is crowded, not frozen (a frozen
    // one sends nothing): a host busy opening connections for many instances looks like this.
    let answered = false
    let connected = false
    const stream = pool.config.stream
    return connectionQuery<A>(
      {
        ...pool.config,
        applicationName: `${pool.config.applicationName ?? "effect-sql-router"}:probe`,
        ...(stream !== undefined && {
          stream: () => {
            const socket = stream()
            socket.once("data", () => {
              answered = true
            })
            return socket
          }
        })
      },
      timeout,
      sql,
      () => {
        connected = true
      }
    ).pipe(
      Effect.mapError((error) => busyOr(error, { sentElsewhere: false, loginAnswered: answered, connected }))
    )
  })

/**
 * Borrowers waiting for a session of the node's pool, a session being opened
 * for them included (the pool's `pending`); none for a node the router did
 * not make. Read by the watchers at their ticks, never on the statement path.
 * @internal
 */
export const waitingOf = (node: Node.Node): Effect.Effect<number> => {
  const own = NodeInternal.internalsOf(node) as NodeInternal.NodeInternals | undefined
  return own === undefined ? Effect.succeed(0) : Effect.map(own.pool.stats, (stats) => stats.pending)
}

/** Statements routed to `node` so far (a node the router did not make has none). @internal */
export const servedOf = (node: Node.Node): number => node.served === undefined ? 0 : node.served.reads + node.served.writes

/** What each node had served at its previous probe. */
const servedAtProbe = new WeakMap<Node.Node, number>()

/**
 * A probe's `Catalog.Query` on `node`. It borrows one of the node's pooled
 * sessions only when one is idle and the node served statements since its
 * previous probe (that traffic keeps the session alive anyway): it then adds
 * no connection and keeps none alive. Otherwise (an idle node, whose pool
 * must drain after `idleTimeout`; a pool with nothing idle; a crowded one,
 * where a checkout would wait behind the application and a pool full of long
 * statements would make a healthy server look dead) it runs on a connection
 * of its own for one statement, closed at once. Every probe is bounded by
 * `timeout` in real time.
 * A probe that times out (its own timeout or its connection's connect
 * timeout) while the server sent anything on the node's other connections
 * is `PoolBusy` (no verdict, `Probing.crowded`): a frozen server sends
 * nothing, a crowded host's server answers its sessions but is slow to
 * start a backend for the probe's login.
 * @internal
 */
export const nodeQuery = (node: Node.Node, timeout: Duration.Duration): Catalog.Query => <A>(sql: string) => {
  const own = NodeInternal.internalsOf(node)
  const { pool, prepare } = own
  return Effect.flatMap(pool.stats, (stats) => {
    const served = servedOf(node)
    const warm = servedAtProbe.get(node) !== served
    servedAtProbe.set(node, served)
    // The server sending anything on the node's connections (answers, logins) while the probe
    // waited proves it alive: a timeout then is the host's crowding, not the node's failure.
    const before = own.received()
    const query = warm && stats.idle > 0 && !crowded(stats, pool.config.multiplex ?? false)
      ? pooledQuery<A>(pool, prepare, timeout, sql)
      : ownQuery<A>(pool, timeout, sql)
    return Effect.mapError(query, (error) =>
      busyOr(error, { sentElsewhere: own.sentSince(before), loginAnswered: false, connected: false }))
  })
}

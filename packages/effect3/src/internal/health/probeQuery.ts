/** @internal */
// One probe statement on a node: on a pooled connection or one of its own, bounded in real time.
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Probing from "@effect-sql-router/core/Probing"
import type Pg from "pg"
import type * as Node from "../../Node.js"
import * as Catalog from "./catalog.js"
import * as Dedicated from "../dedicated.js"
import { isConnectionError, isConnectTimeout } from "../errors.js"

/** Real time, for what must be bounded whatever the fiber's clock. @internal */
export const liveClock = Clock.make()

/**
 * A probe that timed out while the node's pool completed statements: its
 * checkout waited behind busy connections, or its own connection was slow
 * to open on a crowded host. It says nothing against the server. @internal
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

/** What the probes read of a pg-pool client: whether it is still connecting, and its socket. */
interface PoolClientView {
  readonly _connecting?: boolean
  readonly connection?: { readonly stream?: { readonly bytesRead?: number } }
}

/** pg-pool's own list of its clients (read at probe time and at the watchers' ticks, never on the statement path). */
const clientsOf = (pool: Pg.Pool): ReadonlyArray<PoolClientView> =>
  (pool as unknown as { readonly _clients?: ReadonlyArray<PoolClientView> })._clients ?? []

/**
 * What the server has sent so far on each of the pool's connections (pg-pool's
 * own list): taken when a probe starts, so that `sentSince` can tell a crowded
 * server (it still answers other connections) from a frozen one (it sends nothing).
 */
const received = (pool: Pg.Pool): ReadonlyMap<PoolClientView, number> => {
  const counts = new Map<PoolClientView, number>()
  for (const client of clientsOf(pool)) counts.set(client, client.connection?.stream?.bytesRead ?? 0)
  return counts
}

/** Whether the server sent anything on any of the pool's connections since `received` was taken. */
const sentSince = (pool: Pg.Pool, before: ReadonlyMap<PoolClientView, number>): boolean => {
  for (const client of clientsOf(pool)) {
    if ((client.connection?.stream?.bytesRead ?? 0) > (before.get(client) ?? 0)) return true
  }
  return false
}

/** Completed statements per pool: a pool that completes work is alive, however busy. */
const completed = new WeakMap<Pg.Pool, { count: number }>()
const progressOf = (pool: Pg.Pool) => {
  let progress = completed.get(pool)
  if (progress === undefined) {
    const counter = { count: 0 }
    progress = counter
    pool.on("release", (error: unknown) => {
      if (!error) counter.count++
    })
    completed.set(pool, progress)
  }
  return progress
}

/**
 * One statement on a connection of its own, closed at once (its socket
 * dropped): for a probe of an idle node (a pooled connection would stay
 * open for it) or of a node whose pool has nothing idle, where a checkout
 * would open a connection or wait behind the application (long statements
 * on every connection look like a frozen server from inside the pool).
 * Bounded by a real-time timeout whatever the fiber's clock. A timeout (or
 * the driver's connect timeout) is `PoolBusy` (no verdict) when the pool
 * completed statements meanwhile, or when the server answered the login
 * without finishing it: on a crowded host opening a connection can take
 * longer than the probe's timeout, and a failure then would take a live node
 * out and probe it again at once.
 */
const oneOffQuery = <A>(pool: Pg.Pool, timeout: Duration.Duration, sql: string): Effect.Effect<A, unknown> =>
  Effect.suspend(() => {
    // The pool completing statements while this probe waited proves the server alive: a timeout then is
    // the host's crowding (connections are slow to open), not the node's failure.
    const progress = progressOf(pool)
    const before = progress.count
    // A server that answered the login but had not finished it in time is crowded, not frozen (a frozen
    // one sends nothing): a host busy opening connections for many instances looks like this.
    let answered = false
    let connected = false
    return Effect.scoped(Effect.flatMap(
      // The driver's own bound is a backstop: the probe's timeout below is the one that tells.
      Dedicated.connect(Dedicated.fromPool(pool, { suffix: ":probe", connectTimeout: Duration.times(timeout, 2) }), {
        abrupt: true,
        answered: () => {
          answered = true
        }
      }),
      (client) => {
        connected = true
        return Effect.tryPromise({ try: () => client.query(sql), catch: identity })
      }
    )).pipe(
      Effect.map((result) => result.rows[0] as A),
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new ProbeTimedOut(timeout) }),
      Effect.mapError((error) =>
        busyOr(error, { sentElsewhere: progress.count > before, loginAnswered: answered, connected })
      ),
      Effect.withClock(liveClock)
    )
  })

/**
 * Statements waiting for a connection of `pool`: queued, or behind a
 * connection still being opened (pg-pool opens one per checkout while it has
 * room, and hands it to that checkout). Read from the pool's own lists by the
 * watchers at their ticks, never on the statement path.
 * @internal
 */
export const waitingOf = (pool: Pg.Pool): number => {
  let connecting = 0
  for (const client of clientsOf(pool)) if (client._connecting === true) connecting++
  return pool.waitingCount + connecting
}

/**
 * One statement on a connection of the node's pool (an idle one, or a short
 * checkout), bounded by a real-time timeout whatever the fiber's clock. On
 * timeout a connection whose statement hangs is destroyed and released with
 * an error, so the pool drops it instead of waiting on it; a checkout that
 * arrives late is given back unused.
 */
const pooledQuery = <A>(pool: Pg.Pool, timeout: Duration.Duration, sql: string): Effect.Effect<A, unknown> =>
  Effect.async<A, unknown>((resume) => {
    const progress = progressOf(pool)
    const before = progress.count
    let done = false
    let held: { readonly client: Pg.PoolClient; readonly release: (error?: Error | boolean) => void } | undefined
    const abandon = (why: Error) => {
      done = true
      clearTimeout(timer)
      const current = held
      held = undefined
      if (current) {
        Dedicated.destroy(current.client)
        current.release(why)
      }
    }
    const timer = setTimeout(() => {
      if (done) return
      const waitingForCheckout = held === undefined
      abandon(new Error("probe timed out"))
      resume(Effect.fail(
        waitingForCheckout && progress.count > before
          ? new PoolBusy()
          : new ProbeTimedOut(timeout)
      ))
    }, Duration.toMillis(timeout))
    pool.connect((error, client, release) => {
      if (done) {
        if (client) release()
        return
      }
      if (error || !client) {
        done = true
        clearTimeout(timer)
        return resume(Effect.fail(error ?? new Error("no connection")))
      }
      held = { client, release }
      let settled = false
      const settle = (failure: Error | null, result?: Pg.QueryResult) => {
        if (settled) return
        settled = true
        client.off("error", settle)
        if (done) return
        done = true
        clearTimeout(timer)
        held = undefined
        release(failure && isConnectionError(failure) ? failure : undefined)
        resume(failure ? Effect.fail(failure) : Effect.succeed(result!.rows[0] as A))
      }
      client.on("error", settle)
      client.query(sql, settle)
    })
    return Effect.sync(() => {
      if (!done) abandon(new Error("probe interrupted"))
    })
  })

/** Statements routed to `node` so far (a node the router did not make has none). @internal */
export const servedOf = (node: Node.Node): number => node.served === undefined ? 0 : node.served.reads + node.served.writes

/** What each node had served at its previous probe. */
const servedAtProbe = new WeakMap<Node.Node, number>()

/**
 * A probe's `Catalog.Query` on `node`. It borrows one of the node's pooled
 * connections only when one is idle and the node served statements since
 * its previous probe (that traffic keeps the connection alive anyway): it
 * then adds no connection and keeps none alive. Otherwise (an idle node,
 * whose pool must drain after `idleTimeout`; a pool with nothing idle,
 * where a checkout would open a connection or wait behind the application)
 * it runs on a connection of its own for one statement, closed at once.
 * Every probe is bounded by `timeout` in real time.
 * A probe that times out (its own timeout or its connection's connect
 * timeout) while the server sent anything on the node's other connections
 * is `PoolBusy` (no verdict, `Probing.crowded`): a frozen server sends
 * nothing, a crowded host's server answers its sessions but is slow to
 * start a backend for the probe's login.
 * @internal
 */
export const nodeQuery = (node: Node.Node, timeout: Duration.Duration): Catalog.Query => <A>(sql: string) =>
  Effect.suspend(() => {
    const served = servedOf(node)
    const warm = servedAtProbe.get(node) !== served
    servedAtProbe.set(node, served)
    // The server sending anything on the pool's connections (answers, logins) while the probe
    // waited proves it alive: a timeout then is the host's crowding, not the node's failure.
    const before = received(node.pool)
    const query = warm && node.pool.idleCount > 0
      ? pooledQuery<A>(node.pool, timeout, sql)
      : oneOffQuery<A>(node.pool, timeout, sql)
    return Effect.mapError(query, (error) =>
      busyOr(error, { sentElsewhere: sentSince(node.pool, before), loginAnswered: false, connected: false }))
  })

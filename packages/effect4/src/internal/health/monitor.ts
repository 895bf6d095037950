/** @internal */
import * as Health from "@effect-sql-router/core/Health"
import * as Probing from "@effect-sql-router/core/Probing"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import type * as PgPool from "@effect/sql-pg/PgPool"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import type * as Pool from "effect/Pool"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as TxRef from "effect/TxRef"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as Node from "../../Node.js"
import type * as RouterConfig from "../../RouterConfig.js"
import * as Topology from "../../Topology.js"
import { describe } from "../errors.js"
import { healthTransitions, healthyReplicas, probeFailures, replicaLagBytes, replicaLagMillis } from "../metrics.js"
import * as NodeInternal from "../node.js"
import * as Catalog from "./catalog.js"
import * as Waiting from "./waiting.js"

/** @internal */
export const parseLsn = Catalog.parseLsn

/** @internal */
export const formatLsn = Catalog.formatLsn

// -----------------------------------------------------------------------------
// One probe statement
// -----------------------------------------------------------------------------

/** A probe's checkout waited its whole timeout in a pool whose sessions other work holds. @internal */
export class PoolBusy extends Error {
  constructor() {
    super("every pooled connection is busy")
  }
}

/** A probe that got no answer within its timeout. @internal */
export class ProbeTimedOut extends Error {
  constructor(timeout: Duration.Duration) {
    super(`probe timed out after ${Duration.format(timeout)}`)
  }
}

/** Real time, whatever clock the fiber runs on (`TestClock` included). */
const liveClock = Clock.Clock.defaultValue()

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
  sql: string
): Effect.Effect<A, unknown> =>
  Effect.scoped(Effect.flatMap(Effect.scope, (scope) =>
    within(
      Effect.flatMap(
        Scope.provide(PgConnection.make({ ...config, connectTimeout: timeout, multiplex: false, prepare: false }), scope),
        (connection) => Effect.map(connection.query(sql, [], false), (result) => result.rows[0] as A)
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
  connectionQuery<A>(
    { ...pool.config, applicationName: `${pool.config.applicationName ?? "effect-sql-router"}:probe` },
    timeout,
    sql
  )

/** Statements routed to `node` so far (a node the router did not make has none). */
const servedOf = (node: Node.Node): number => node.served === undefined ? 0 : node.served.reads + node.served.writes

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
 * @internal
 */
export const nodeQuery = (node: Node.Node, timeout: Duration.Duration): Catalog.Query => <A>(sql: string) => {
  const { pool, prepare } = NodeInternal.internalsOf(node)
  return Effect.flatMap(pool.stats, (stats) => {
    const served = servedOf(node)
    const warm = servedAtProbe.get(node) !== served
    servedAtProbe.set(node, served)
    return warm && stats.idle > 0 && !crowded(stats, pool.config.multiplex ?? false)
      ? pooledQuery<A>(pool, prepare, timeout, sql)
      : ownQuery<A>(pool, timeout, sql)
  })
}

// -----------------------------------------------------------------------------
// Judging a replica
// -----------------------------------------------------------------------------

/**
 * The primary as its last probe saw it: what a replica must follow.
 * @internal
 */
export type PrimaryView = Health.PrimaryView<Node.Node>

/** What a replica's probe needs to know about the rest of the topology. @internal */
export interface Context {
  /** The current primary's view, or undefined when the current primary has not been probed yet. */
  readonly primary: Effect.Effect<PrimaryView | undefined>
  /** The primary's WAL position now (asked when a replica seems ahead of the last known one). */
  readonly primaryLsnNow: Effect.Effect<bigint | undefined>
  /** The node the router knows at this address, if any. */
  readonly nodeAt: (address: string) => Effect.Effect<Node.Node | undefined>
}

type Judged = Health.Judged

/**
 * Gathers what the admission verdict (`Health.judge` in the core) needs and
 * runs it: the primary's position now is asked at most once, and only when
 * the verdict says it depends on it.
 * @internal
 */
export const judge = (standby: Catalog.StandbyState, context: Context): Effect.Effect<Judged> =>
  Effect.gen(function*() {
    const view = standby.standby ? yield* context.primary : undefined
    const sender = view?.ok && standby.receiver?.sender !== undefined
      ? yield* context.nodeAt(standby.receiver.sender)
      : undefined
    const first = Health.judge({ standby, view, sender })
    if (first._tag === "Judged") return first.probe
    const primaryNow = { lsn: yield* context.primaryLsnNow }
    const second = Health.judge({ standby, view, sender, primaryNow })
    // With the primary's position given, a verdict needs nothing more.
    return second._tag === "Judged"
      ? second.probe
      : yield* Effect.die(new Error("Health.judge asked for the primary's position twice"))
  })

/**
 * Probes a replica: its recovery state, WAL receiver and replay position,
 * judged against the primary.
 * @internal
 */
export const probeReplica = (query: Catalog.Query, context: Context): Effect.Effect<Judged, unknown> =>
  Effect.flatMap(Catalog.standbyState(query), (standby) => judge(standby, context))

// -----------------------------------------------------------------------------
// Recording a probe
// -----------------------------------------------------------------------------

/** The hysteresis thresholds, and the slow start of a replica coming back. @internal */
export interface Thresholds extends Health.Hysteresis {
  readonly slowStart?: Duration.Duration | undefined
}

const slowStartMillis = (thresholds: Thresholds): number | undefined =>
  thresholds.slowStart === undefined ? undefined : Duration.toMillis(thresholds.slowStart)

/**
 * Records a probe and applies hysteresis (`Health.step` in the core): out
 * after `failureThreshold` consecutive failures, back after
 * `successThreshold` consecutive successes (only `Following` counts as one).
 * A diverged node is out at once; a probe that learnt nothing (`Stranded`,
 * `Busy`) changes nothing. One transaction, or part of the caller's.
 * @internal
 */
export const applyProbe = (
  replica: Topology.Replica,
  probe: Topology.Probe,
  thresholds: Thresholds
): Effect.Effect<HealthMonitor.Transition | undefined> =>
  Effect.tx(Effect.gen(function*() {
    const health = yield* TxRef.get(replica.health)
    if (!health.member) return undefined
    yield* TxRef.set(replica.probe, probe)
    const effect = Health.effectOf(probe)
    if (effect === "hold") return undefined
    const { streak, transition } = Health.step(health, effect, thresholds)
    const next: Topology.Health = { ...health, streak, up: transition === undefined ? health.up : transition === "up" }
    // Slow start is in real time, as the read path's ramp draws are.
    const now = Date.now()
    // Back after a failure: slow start (if on) from now. The ramp is dropped at the first probe after it ends.
    yield* TxRef.set(
      replica.health,
      transition === "up"
        ? Topology.withRamp(next, slowStartMillis(thresholds), now)
        : next.ramp !== undefined && Health.rampOver(next.ramp, now)
        ? { ...next, ramp: undefined }
        : next
    )
    return transition
  }))

/** @internal */
export const logTransition = (
  replica: Topology.Replica,
  transition: HealthMonitor.Transition | undefined,
  probe: Topology.Probe
): Effect.Effect<void> =>
  transition === undefined
    ? Effect.void
    // Marked unhealthy by hand, it stays out of rotation whatever the probes say.
    : replica.health.value.markedDown
    ? Effect.logInfo(
      `replica ${replica.node.id} ${transition === "down" ? `fails its probes: ${probe.error ?? "probe failed"}` : "passes its probes"} (still out of rotation: marked unhealthy by hand)`
    )
    : transition === "down"
    ? Effect.logWarning(`replica ${replica.node.id} left rotation: ${probe.error ?? "probe failed"}`)
    : Effect.logInfo(`replica ${replica.node.id} is back in rotation`)

/** @internal */
export const updateGauges = (topology: Topology.Topology): Effect.Effect<void> =>
  Effect.flatMap(
    Effect.tx(Effect.zip(Topology.countHealthy(topology), TxRef.get(topology.replicas))),
    ([healthy, replicas]) =>
      Effect.andThen(
        Metric.update(healthyReplicas, healthy),
        Effect.forEach(replicas, (replica) =>
          Effect.flatMap(TxRef.get(replica.probe), (probe) => {
            const attributes = { node: replica.node.id }
            return Effect.andThen(
              Metric.update(Metric.withAttributes(replicaLagBytes, attributes), probe?.lagBytes ?? 0),
              Metric.update(Metric.withAttributes(replicaLagMillis, attributes), probe?.lagMillis ?? 0)
            )
          }), { discard: true })
      )
  )

/** What a failed probe records: the last known position stays (lag stays known while a probe fails). */
const failedProbe = (error: unknown, at: number, previous: Topology.Probe | undefined): Topology.Probe =>
  error instanceof PoolBusy
    ? {
      at,
      ok: false,
      replayLsn: previous?.replayLsn,
      lagBytes: previous?.lagBytes,
      lagMillis: previous?.lagMillis,
      error: previous?.error,
      state: { _tag: "Busy" }
    }
    : {
      at,
      ok: false,
      replayLsn: previous?.replayLsn,
      lagBytes: previous?.lagBytes,
      lagMillis: previous?.lagMillis,
      error: describe(error),
      state: { _tag: "Unreachable", error: describe(error) }
    }

/**
 * One look at a replica recorded: a probe's outcome, or the verdict the
 * primary's report gave (`at`: when it was taken), with its hysteresis,
 * metrics and log.
 * @internal
 */
export const recordLook = (
  replica: Topology.Replica,
  result: Result.Result<Omit<Topology.Probe, "at">, unknown>,
  at: number,
  thresholds: Thresholds
): Effect.Effect<HealthMonitor.Transition | undefined> =>
  Effect.gen(function*() {
    const previous = yield* TxRef.get(replica.probe)
    const recorded: Topology.Probe = result._tag === "Success"
      ? { ...result.success, at }
      : failedProbe(result.failure, at, previous)
    if (!recorded.ok && recorded.state?._tag !== "Busy") {
      yield* Metric.update(Metric.withAttributes(probeFailures, { node: replica.node.id }), 1)
    }
    const transition = yield* applyProbe(replica, recorded, thresholds)
    // Out of rotation: the reads waiting on it run elsewhere now, not at their read timeout.
    if (transition === "down") Waiting.releaseWaiting(replica)
    yield* logTransition(replica, transition, recorded)
    const tag = recorded.state?._tag
    if (transition === undefined && tag !== previous?.state?._tag && (tag === "Diverged" || tag === "Detached")) {
      const health = yield* TxRef.get(replica.health)
      if (!health.up) yield* Effect.logWarning(`replica ${replica.node.id} stays out of rotation: ${recorded.error}`)
    }
    if (transition !== undefined) {
      yield* Metric.update(
        Metric.withAttributes(healthTransitions, { to: transition === "up" ? "healthy" : "unhealthy" }),
        1
      )
    }
    return transition
  })

/**
 * One probe of one replica, recorded.
 * @internal
 */
export const checkReplica = (
  replica: Topology.Replica,
  probe: HealthMonitor.ProbeFn,
  thresholds: Thresholds
): Effect.Effect<HealthMonitor.Transition | undefined> =>
  Effect.flatMap(
    Effect.result(probe(replica.node)),
    (result) => Effect.flatMap(Clock.currentTimeMillis, (at) => recordLook(replica, result, at, thresholds))
  )

// -----------------------------------------------------------------------------
// The loops
// -----------------------------------------------------------------------------

/**
 * What the watchers share: the primary's latest report of its standbys, and
 * what tells the primary's watcher that something changed.
 * @internal
 */
export interface Watch {
  /** The primary's latest report; undefined before its first look and after a failed one. */
  report: Probing.Report | undefined
  /** The node that gave `report`: a report of a node that is no longer the primary proves nothing. */
  reportFrom: Node.Node | undefined
  /** The timeline the primary's last look saw. */
  timeline: number | undefined
  /** Bumped by a failed look at the primary: every replica's delay goes back to `interval`. */
  resets: number
  /** Bumped by every replica transition: the primary's next look is not calm. */
  changes: number
  /** How the primary names each replica (`Catalog.walName`), learnt by the replica's probes. */
  readonly walNames: WeakMap<Node.Node, string>
}

/** @internal */
export const makeWatch = (): Watch => ({
  report: undefined,
  reportFrom: undefined,
  timeline: undefined,
  resets: 0,
  changes: 0,
  walNames: new WeakMap()
})

/** The probe schedule in milliseconds: `interval`, doubled while calm up to `maxInterval`. @internal */
export const cadenceOf = (health: RouterConfig.Resolved["health"]): Probing.Cadence => ({
  base: Duration.toMillis(health.interval),
  max: Duration.toMillis(health.maxInterval)
})

/** A node's counters at a watcher's previous look. */
interface Seen {
  served: number
  failed: number
  inFlight: number
}

const seenNow = (node: Node.Node, inFlight: number): Seen => ({
  served: servedOf(node),
  failed: NodeInternal.failuresOf(node),
  inFlight
})

/**
 * A node's traffic since `seen` (which moves to now): failures counted,
 * statements completed (those routed to it less the growth of those in
 * flight), statements in flight. Counters the statements already keep: no
 * cost on the statement path.
 */
const trafficSince = (seen: Seen, node: Node.Node, inFlight: number): Probing.Traffic => {
  const served = servedOf(node)
  const failed = NodeInternal.failuresOf(node)
  const traffic: Probing.Traffic = {
    completed: Math.max(0, served - seen.served - Math.max(0, inFlight - seen.inFlight)),
    failed: failed - seen.failed,
    inFlight
  }
  seen.served = served
  seen.failed = failed
  seen.inFlight = inFlight
  return traffic
}

/**
 * The watcher of one replica, until it is removed from the topology. It
 * ticks every `interval` (a tick with nothing to do does no I/O) and follows
 * `Probing.planReplica`: probe it (first look, traffic that fails or hangs,
 * out of rotation, lost or stale in the primary's report, or its delay up
 * with no report naming it), take the primary's report as its look, or
 * wait. Each replica has its own fiber: a frozen one must not delay the
 * others.
 * @internal
 */
export const watchReplica = (
  topology: Topology.Topology,
  replica: Topology.Replica,
  health: RouterConfig.Resolved["health"],
  probe: HealthMonitor.ProbeFn,
  watch?: Watch | undefined
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const cadence = cadenceOf(health)
    const replyStaleAfter = Duration.toMillis(health.replyTimeout)
    const seen = seenNow(replica.node, replica.inFlight.value)
    let delay = cadence.base
    let resets = watch?.resets ?? 0
    const tick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const traffic = trafficSince(seen, replica.node, yield* TxRef.get(replica.inFlight))
      if (watch !== undefined && watch.resets !== resets) {
        resets = watch.resets
        delay = cadence.base
      }
      const last = yield* TxRef.get(replica.probe)
      // The report of the primary now (after a switch, the old primary's says nothing).
      const report = watch?.report !== undefined && watch.reportFrom === (yield* TxRef.get(topology.primary))
        ? watch.report
        : undefined
      const plan = Probing.planReplica({
        now,
        lastCheckAt: last?.at,
        delay,
        traffic,
        up: (yield* TxRef.get(replica.health)).up,
        walName: watch?.walNames.get(replica.node),
        report,
        replyStaleAfter
      })
      if (plan._tag !== "Wait") {
        const transition = plan._tag === "Probe"
          ? yield* checkReplica(replica, probe, health)
          : yield* recordLook(replica, Result.succeed(plan.probe), plan.at, health)
        if (transition !== undefined && watch !== undefined) watch.changes++
        delay = Probing.nextDelay(cadence, delay, Probing.calm(yield* TxRef.get(replica.probe), transition))
        yield* updateGauges(topology)
      }
      return (yield* TxRef.get(replica.health)).member
    })
    return Effect.repeat(tick, { schedule: Schedule.spaced(health.interval), while: (member) => member })
  }).pipe(Effect.asVoid)

/**
 * The primary's watcher: a tick every `interval`, a look (`look`: true when
 * the primary answered) when its delay is up, or at once when routed
 * statements met connection failures or another node became the primary. The delay doubles up to `maxInterval`
 * after a calm look (no traffic on any node since the previous one, the same
 * primary on the same timeline, no replica transition) and is back to
 * `interval` after anything else; a failed look also sends every replica's
 * delay back to `interval`.
 * @internal
 */
export const watchPrimaryWith = (
  topology: Topology.Topology,
  health: RouterConfig.Resolved["health"],
  look: Effect.Effect<boolean>,
  options: { readonly watch?: Watch | undefined; readonly firstAfterInterval?: boolean | undefined } = {}
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const cadence = cadenceOf(health)
    const { watch } = options
    let delay = cadence.base
    let lastLook: number | undefined
    let lookedAt: Node.Node | undefined
    let served = 0
    let failed = 0
    const totals = Effect.map(
      Effect.tx(Effect.zip(TxRef.get(topology.primary), TxRef.get(topology.replicas))),
      ([primary, replicas]) => {
        let served = servedOf(primary)
        let failed = NodeInternal.failuresOf(primary)
        for (const replica of replicas) {
          served += servedOf(replica.node)
          failed += NodeInternal.failuresOf(replica.node)
        }
        return { primary, served, failed }
      }
    )
    const tick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const before = yield* totals
      if (lastLook === undefined && options.firstAfterInterval) {
        lastLook = now
        lookedAt = before.primary
        served = before.served
        failed = before.failed
        return
      }
      // Due, or at once when routed statements met connection failures or the primary changed.
      if (lastLook !== undefined && now - lastLook < delay && before.failed === failed && before.primary === lookedAt) {
        return
      }
      const timeline = watch?.timeline
      const changes = watch?.changes
      const ok = yield* look
      const after = yield* totals
      lastLook = yield* Clock.currentTimeMillis
      lookedAt = after.primary
      const calm = ok && after.served === served && after.failed === failed && after.primary === before.primary &&
        watch?.timeline === timeline && watch?.changes === changes
      served = after.served
      failed = after.failed
      delay = Probing.nextDelay(cadence, delay, calm)
      if (!ok && watch !== undefined) watch.resets++
    })
    return Effect.repeat(tick, Schedule.spaced(health.interval))
  }).pipe(Effect.asVoid)

/**
 * The primary's probe loop: its WAL position is what replica lag is measured
 * against, its timeline what replicas must follow; its report of the
 * standbys is what replica watchers read.
 * @internal
 */
export const watchPrimary = (
  topology: Topology.Topology,
  health: RouterConfig.Resolved["health"],
  probePrimary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>,
  watch?: Watch | undefined
): Effect.Effect<void> =>
  watchPrimaryWith(
    topology,
    health,
    Effect.gen(function*() {
      const primary = yield* TxRef.get(topology.primary)
      const lsn = yield* Effect.result(probePrimary(primary))
      if (lsn._tag === "Success") {
        yield* TxRef.set(topology.primaryLsn, lsn.success)
        return true
      }
      yield* Effect.logWarning(`primary probe failed: ${describe(lsn.failure)}`)
      return false
    }),
    { watch }
  )

/** @internal */
export interface Probes {
  readonly replica: HealthMonitor.ProbeFn
  /** Probes the primary and records what replicas must follow; its WAL position. */
  readonly primary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>
  /** Whether the node is in recovery, its WAL position and (if writable) timeline. */
  readonly role: (node: Node.Node) => Effect.Effect<Catalog.NodeRole, unknown>
  /**
   * `role` of the current primary, in the same statement as its report of
   * the standbys (kept in `watch` when it answers as writable, dropped when
   * it does not answer): discovery's question to the current primary.
   */
  readonly primaryRole: (node: Node.Node) => Effect.Effect<Catalog.NodeRole, unknown>
  /** What the watchers share: the primary's latest report. */
  readonly watch: Watch
  /** Records what discovery learnt of the current primary (undefined: it did not answer as writable). */
  readonly recordPrimary: (node: Node.Node, role: Catalog.NodeRole | undefined) => Effect.Effect<void>
  /** A node left the topology: forget what its probes learnt. */
  readonly forget: (node: Node.Node) => Effect.Effect<void>
}

const configuredAddress = (node: Node.Node): string => {
  const colon = node.address.lastIndexOf(":")
  return Catalog.address(node.address.slice(0, colon), node.address.slice(colon + 1))
}

/**
 * Real probes over each node's own pool; what they learn of the primary is
 * the view replicas are judged against.
 * @internal
 */
export const makeProbes = (
  topology: Topology.Topology,
  timeout: Duration.Duration
): Probes => {
  let view: PrimaryView | undefined
  const watch = makeWatch()
  /** How each node names itself (`inet_server_addr()` and its port), learnt by its probes. */
  const selves = new Map<Node.Node, string>()
  const learn = (node: Node.Node, self: string | undefined) => {
    if (self !== undefined) selves.set(node, self)
  }
  const queryOf = (node: Node.Node) => nodeQuery(node, timeout)
  const record = (node: Node.Node, role: Catalog.NodeRole | undefined) =>
    Effect.sync(() => {
      if (role !== undefined && !role.standby) {
        view = { node, ok: true, lsn: role.lsn, timeline: role.timeline }
      } else if (view?.node === node) {
        view = { ...view, ok: false }
      } else {
        view = { node, ok: false, lsn: undefined, timeline: undefined }
      }
    })
  const role = (node: Node.Node) =>
    Effect.tap(Catalog.role(queryOf(node)), (answer) => Effect.sync(() => learn(node, answer.self)))
  // The primary's look: its role and its report of the standbys, in one statement.
  const primaryRole = (node: Node.Node): Effect.Effect<Catalog.NodeRole, unknown> =>
    Catalog.primaryReport(queryOf(node)).pipe(
      Effect.flatMap((answer) =>
        Effect.map(Clock.currentTimeMillis, (at) => {
          learn(node, answer.self)
          watch.report = answer.standby ? undefined : { at, primaryLsn: answer.lsn, standbys: answer.standbys }
          watch.reportFrom = node
          if (!answer.standby) watch.timeline = answer.timeline
          return answer
        })
      ),
      Effect.tapError(() => Effect.sync(() => {
        watch.report = undefined
      }))
    )
  const currentPrimary = TxRef.get(topology.primary)
  // Replica probes that need the primary's position now share one question,
  // as long as it was asked after their own read: the primary answers about
  // once per interval, not once per replica.
  let asked: { readonly at: number; readonly lsn: Deferred.Deferred<bigint | undefined> } | undefined
  const primaryLsnAfter = (readAt: number): Effect.Effect<bigint | undefined> =>
    Effect.suspend(() => {
      if (asked !== undefined && asked.at >= readAt) return Deferred.await(asked.lsn)
      const lsn = Deferred.makeUnsafe<bigint | undefined>()
      asked = { at: performance.now(), lsn }
      // Uninterruptible: others may wait on it (the query has its own timeout).
      return Effect.andThen(
        Effect.uninterruptible(Effect.flatMap(
          Effect.flatMap(currentPrimary, (primary) =>
            Catalog.currentLsn(queryOf(primary)).pipe(Effect.orElseSucceed(() => undefined))),
          (answer) => Deferred.succeed(lsn, answer)
        )),
        Deferred.await(lsn)
      )
    })
  const context: Omit<Context, "primaryLsnNow"> = {
    primary: Effect.map(currentPrimary, (primary) => view?.node === primary ? view : undefined),
    nodeAt: (address) =>
      Effect.map(Effect.tx(Effect.zip(TxRef.get(topology.primary), TxRef.get(topology.replicas))), ([primary, replicas]) =>
        [primary, ...replicas.map((r) => r.node)].find((node) =>
          configuredAddress(node) === address || selves.get(node) === address
        ))
  }
  return {
    replica: (node) =>
      Effect.flatMap(
        Effect.tap(Catalog.standbyState(queryOf(node)), (state) =>
          Effect.sync(() => {
            learn(node, state.self)
            if (state.walName !== undefined) watch.walNames.set(node, state.walName)
            else watch.walNames.delete(node)
          })),
        (state) => judge(state, { ...context, primaryLsnNow: primaryLsnAfter(performance.now()) })
      ),
    primary: (node) =>
      primaryRole(node).pipe(
        Effect.tap((answer) => record(node, answer)),
        Effect.tapError(() => record(node, undefined)),
        Effect.flatMap((answer) =>
          answer.standby ? Effect.fail(new Error("the primary is a standby (in recovery)")) : Effect.succeed(answer.lsn)
        )
      ),
    role,
    primaryRole,
    watch,
    recordPrimary: record,
    forget: (node) =>
      Effect.sync(() => {
        selves.delete(node)
        watch.walNames.delete(node)
      })
  }
}

/** Runs on real time unless the configuration asks for the fiber's own clock. @internal */
export const onClock = <A, E, R>(
  health: RouterConfig.Resolved["health"],
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => health.clock === "live" ? Effect.provideService(effect, Clock.Clock, liveClock) : effect

/**
 * First entry: one probe of the primary, then one of each replica; a replica
 * is in rotation at start only if it follows the primary.
 * @internal
 */
export const admitAtStart = (topology: Topology.Topology, probes: Probes): Effect.Effect<void> =>
  Effect.gen(function*() {
    const primary = yield* TxRef.get(topology.primary)
    yield* Effect.ignore(probes.primary(primary))
    const replicas = yield* TxRef.get(topology.replicas)
    yield* Effect.forEach(replicas, (replica) =>
      Effect.gen(function*() {
        const result = yield* Effect.result(probes.replica(replica.node))
        const at = yield* Clock.currentTimeMillis
        const following = result._tag === "Success" && result.success.state?._tag === "Following"
        yield* Effect.tx(Effect.andThen(
          result._tag === "Success" ? TxRef.set(replica.probe, { ...result.success, at }) : Effect.void,
          TxRef.update(replica.health, (health) => ({ ...health, up: following, streak: following ? 1 : 0 }))
        ))
        if (!following && result._tag === "Success") {
          yield* Effect.logWarning(`replica ${replica.node.id} is out of rotation at start: ${result.success.error}`)
        }
      }), { concurrency: "unbounded", discard: true })
  })

/**
 * Forks the primary's watcher and one watcher per replica into the current
 * scope.
 * @internal
 */
export const start = (options: {
  readonly topology: Topology.Topology
  readonly health: RouterConfig.Resolved["health"]
  readonly probe: HealthMonitor.ProbeFn
  readonly probePrimary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>
  /** What the watchers share (the primary's report); none: replicas are probed when due. */
  readonly watch?: Watch | undefined
  /** With discovery, one round of it replaces the primary's probe (true: the current primary answered). */
  readonly primaryLoop?: Effect.Effect<boolean> | undefined
}): Effect.Effect<void, never, Scope.Scope> =>
  onClock(
    options.health,
    Effect.gen(function*() {
      const { health, topology, watch } = options
      yield* Effect.forkScoped(
        options.primaryLoop
          // The router has just discovered the topology: the first round is one interval away.
          ? watchPrimaryWith(topology, health, options.primaryLoop, { watch, firstAfterInterval: true })
          : watchPrimary(topology, health, options.probePrimary, watch)
      )
      const replicas = yield* TxRef.get(topology.replicas)
      for (const replica of replicas) {
        yield* Effect.forkScoped(watchReplica(topology, replica, health, options.probe, watch))
      }
    })
  )

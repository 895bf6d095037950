/** @internal */
import * as Health from "@effect-sql-router/core/Health"
import * as Probing from "@effect-sql-router/core/Probing"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import { identity } from "effect/Function"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type Pg from "pg"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as Node from "../../Node.js"
import type * as RouterConfig from "../../RouterConfig.js"
import * as Topology from "../../Topology.js"
import * as Catalog from "./catalog.js"
import * as Dedicated from "../dedicated.js"
import { describe, isConnectionError } from "../errors.js"
import { healthTransitions, healthyReplicas, probeFailures, replicaLagBytes, replicaLagMillis } from "../metrics.js"
import * as NodeInternal from "../node.js"
import * as SelectionInternal from "../routing/selection.js"
import * as Waiting from "./waiting.js"

/** @internal */
export const parseLsn = Catalog.parseLsn

/** @internal */
export const formatLsn = Catalog.formatLsn

/** Real time, for what must be bounded whatever the fiber's clock. */
const liveClock = Clock.make()

/** A probe's checkout waited its whole timeout in a pool whose connections all kept working. @internal */
export class PoolBusy extends Error {
  constructor() {
    super("every pooled connection is busy")
  }
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
 * Bounded by a real-time timeout whatever the fiber's clock.
 */
const oneOffQuery = <A>(pool: Pg.Pool, timeout: Duration.Duration, sql: string): Effect.Effect<A, unknown> =>
  Effect.scoped(Effect.flatMap(
    Dedicated.connect(Dedicated.fromPool(pool, { suffix: ":probe", connectTimeout: timeout }), { abrupt: true }),
    (client) => Effect.tryPromise({ try: () => client.query(sql), catch: identity })
  )).pipe(
    Effect.map((result) => result.rows[0] as A),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new Error(`probe timed out after ${Duration.format(timeout)}`)
    }),
    Effect.withClock(liveClock)
  )

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
          : new Error(`probe timed out after ${Duration.format(timeout)}`)
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

/** Statements routed to `node` so far (a node the router did not make has none). */
const servedOf = (node: Node.Node): number => node.served === undefined ? 0 : node.served.reads + node.served.writes

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
 * @internal
 */
export const nodeQuery = (node: Node.Node, timeout: Duration.Duration): Catalog.Query => <A>(sql: string) =>
  Effect.suspend(() => {
    const served = servedOf(node)
    const warm = servedAtProbe.get(node) !== served
    servedAtProbe.set(node, served)
    return warm && node.pool.idleCount > 0
      ? pooledQuery<A>(node.pool, timeout, sql)
      : oneOffQuery<A>(node.pool, timeout, sql)
  })

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
  /** The id of the node the router knows at this address, if any. */
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
      : yield* Effect.dieMessage("Health.judge asked for the primary's position twice")
  })

/**
 * Probes a replica: its recovery state, WAL receiver and replay position,
 * judged against the primary.
 * @internal
 */
export const probeReplica = (query: Catalog.Query, context: Context): Effect.Effect<Judged, unknown> =>
  Effect.flatMap(Catalog.standbyState(query), (standby) => judge(standby, context))

/** The hysteresis thresholds, and the slow start of a replica coming back. @internal */
export interface Thresholds extends Health.Hysteresis {
  readonly slowStart?: Duration.Duration | undefined
}

const slowStartMillis = (thresholds: Thresholds): number | undefined =>
  thresholds.slowStart === undefined ? undefined : Duration.toMillis(thresholds.slowStart)

/**
 * Records a probe and applies hysteresis: out after `failureThreshold`
 * consecutive failures, back after `successThreshold` consecutive successes
 * (only `Following` counts as one). A diverged node is out at once; a probe
 * that learnt nothing (`Stranded`, `Busy`) changes nothing.
 * `streak` counts successes when positive, failures when negative.
 * @internal
 */
export const applyProbe = (
  replica: Topology.Replica,
  probe: Topology.Probe,
  thresholds: Thresholds
): STM.STM<HealthMonitor.Transition | undefined> =>
  STM.gen(function*() {
    const health = yield* TRef.get(replica.health)
    if (!health.member) return undefined
    yield* TRef.set(replica.probe, probe)
    const effect = Health.effectOf(probe)
    if (effect === "hold") return undefined
    const { streak, transition } = Health.step(health, effect, thresholds)
    const next: Topology.Health = { ...health, streak, up: transition === undefined ? health.up : transition === "up" }
    const now = Date.now()
    // Back after a failure: slow start (if on) from now. The ramp is dropped at the first probe after it ends.
    yield* TRef.set(
      replica.health,
      transition === "up"
        ? Topology.withRamp(next, slowStartMillis(thresholds), now)
        : next.ramp !== undefined && Health.rampOver(next.ramp, now)
        ? { ...next, ramp: undefined }
        : next
    )
    return transition
  })

/** @internal */
export const logTransition = (replica: Topology.Replica, transition: HealthMonitor.Transition | undefined, probe: Topology.Probe) =>
  transition === undefined
    ? Effect.void
    // Marked unhealthy by hand, it stays out of rotation whatever the probes say.
    : SelectionInternal.peek(replica.health).markedDown
    ? Effect.logInfo(
      `replica ${replica.node.id} ${transition === "down" ? `fails its probes: ${probe.error ?? "probe failed"}` : "passes its probes"} (still out of rotation: marked unhealthy by hand)`
    )
    : transition === "down"
    ? Effect.logWarning(`replica ${replica.node.id} left rotation: ${probe.error ?? "probe failed"}`)
    : Effect.logInfo(`replica ${replica.node.id} is back in rotation`)

/** @internal */
export const updateGauges = (topology: Topology.Topology) =>
  Effect.flatMap(
    STM.commit(STM.zip(Topology.countHealthy(topology), TRef.get(topology.replicas))),
    ([healthy, replicas]) =>
      Effect.zipRight(
        Metric.set(healthyReplicas, healthy),
        Effect.forEach(replicas, (replica) =>
          Effect.flatMap(STM.commit(TRef.get(replica.probe)), (probe) =>
            Effect.all([
              Metric.set(Metric.tagged(replicaLagBytes, "node", replica.node.id), probe?.lagBytes ?? 0),
              Metric.set(Metric.tagged(replicaLagMillis, "node", replica.node.id), probe?.lagMillis ?? 0)
            ])), { discard: true })
      )
  )

/**
 * One look at a replica recorded: a probe's outcome, or the verdict the
 * primary's report gave (`at`: when it was taken), with its hysteresis,
 * metrics and log.
 * @internal
 */
export const recordLook = (
  replica: Topology.Replica,
  result: Either.Either<Omit<Topology.Probe, "at">, unknown>,
  at: number,
  thresholds: Thresholds
): Effect.Effect<HealthMonitor.Transition | undefined> =>
  Effect.gen(function*() {
    const previous = yield* STM.commit(TRef.get(replica.probe))
    const recorded: Topology.Probe = result._tag === "Right"
      ? { ...result.right, at }
      : {
        at,
        ok: false,
        // Keep the last known position: lag stays known while a probe fails.
        replayLsn: previous?.replayLsn,
        lagBytes: previous?.lagBytes,
        lagMillis: previous?.lagMillis,
        error: result.left instanceof PoolBusy ? previous?.error : describe(result.left),
        state: result.left instanceof PoolBusy ? { _tag: "Busy" } : { _tag: "Unreachable", error: describe(result.left) }
      }
    if (!recorded.ok && recorded.state?._tag !== "Busy") {
      yield* Metric.increment(Metric.tagged(probeFailures, "node", replica.node.id))
    }
    const transition = yield* STM.commit(applyProbe(replica, recorded, thresholds))
    // Out of rotation: the reads waiting on it run elsewhere now, not at their read timeout.
    if (transition === "down") Waiting.releaseWaiting(replica)
    yield* logTransition(replica, transition, recorded)
    const tag = recorded.state?._tag
    if (transition === undefined && tag !== previous?.state?._tag && (tag === "Diverged" || tag === "Detached")) {
      const health = yield* STM.commit(TRef.get(replica.health))
      if (!health.up) yield* Effect.logWarning(`replica ${replica.node.id} stays out of rotation: ${recorded.error}`)
    }
    if (transition !== undefined) {
      yield* Metric.increment(Metric.tagged(healthTransitions, "to", transition === "up" ? "healthy" : "unhealthy"))
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
    Effect.either(probe(replica.node)),
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
    const seen = seenNow(replica.node, SelectionInternal.peek(replica.inFlight))
    let delay = cadence.base
    let resets = watch?.resets ?? 0
    const tick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const [inFlight, last, state] = yield* STM.commit(
        STM.all([TRef.get(replica.inFlight), TRef.get(replica.probe), TRef.get(replica.health)])
      )
      const traffic = trafficSince(seen, replica.node, inFlight)
      if (watch !== undefined && watch.resets !== resets) {
        resets = watch.resets
        delay = cadence.base
      }
      const plan = Probing.planReplica({
        now,
        lastCheckAt: last?.at,
        delay,
        traffic,
        up: state.up,
        walName: watch?.walNames.get(replica.node),
        report: watch?.report,
        replyStaleAfter
      })
      if (plan._tag !== "Wait") {
        const transition = plan._tag === "Probe"
          ? yield* checkReplica(replica, probe, health)
          : yield* recordLook(replica, Either.right(plan.probe), plan.at, health)
        if (transition !== undefined && watch !== undefined) watch.changes++
        delay = Probing.nextDelay(cadence, delay, Probing.calm(yield* STM.commit(TRef.get(replica.probe)), transition))
        yield* updateGauges(topology)
      }
      return (yield* STM.commit(TRef.get(replica.health))).member
    })
    return Effect.repeat(tick, { schedule: Schedule.spaced(health.interval), while: (member) => member })
  }).pipe(Effect.asVoid)

/**
 * The primary's watcher: a tick every `interval`, a look (`look`: true when
 * the primary answered) when its delay is up, or at once when routed
 * statements met connection failures. The delay doubles up to `maxInterval`
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
    let served = 0
    let failed = 0
    const totals = Effect.map(
      STM.commit(STM.zip(TRef.get(topology.primary), TRef.get(topology.replicas))),
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
        served = before.served
        failed = before.failed
        return
      }
      if (lastLook !== undefined && now - lastLook < delay && before.failed === failed) return
      const timeline = watch?.timeline
      const changes = watch?.changes
      const ok = yield* look
      const after = yield* totals
      lastLook = yield* Clock.currentTimeMillis
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
      const primary = yield* STM.commit(TRef.get(topology.primary))
      const lsn = yield* Effect.either(probePrimary(primary))
      if (lsn._tag === "Right") {
        yield* STM.commit(TRef.set(topology.primaryLsn, lsn.right))
        return true
      }
      yield* Effect.logWarning(`primary probe failed: ${describe(lsn.left)}`)
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
          if (!answer.standby) watch.timeline = answer.timeline
          return answer
        })
      ),
      Effect.tapError(() =>
        Effect.sync(() => {
          watch.report = undefined
        })
      )
    )
  const currentPrimary = STM.commit(TRef.get(topology.primary))
  // Replica probes that need the primary's position now share one question,
  // as long as it was asked after their own read: the primary answers about
  // once per interval, not once per replica.
  let asked: { readonly at: number; readonly lsn: Deferred.Deferred<bigint | undefined> } | undefined
  const primaryLsnAfter = (readAt: number): Effect.Effect<bigint | undefined> =>
    Effect.suspend(() => {
      if (asked !== undefined && asked.at >= readAt) return Deferred.await(asked.lsn)
      const lsn = Deferred.unsafeMake<bigint | undefined>(FiberId.none)
      asked = { at: performance.now(), lsn }
      // Uninterruptible: others may wait on it (the query has its own timeout).
      return Effect.zipRight(
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
      Effect.map(STM.commit(STM.zip(TRef.get(topology.primary), TRef.get(topology.replicas))), ([primary, replicas]) =>
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
        Effect.tapBoth({
          onFailure: () => record(node, undefined),
          onSuccess: (answer) => record(node, answer)
        }),
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
): Effect.Effect<A, E, R> => health.clock === "live" ? Effect.withClock(effect, liveClock) : effect

/**
 * First entry: one probe of the primary, then one of each replica; a replica
 * is in rotation at start only if it follows the primary.
 * @internal
 */
export const admitAtStart = (topology: Topology.Topology, probes: Probes): Effect.Effect<void> =>
  Effect.gen(function*() {
    const primary = yield* STM.commit(TRef.get(topology.primary))
    yield* Effect.ignore(probes.primary(primary))
    const replicas = yield* STM.commit(TRef.get(topology.replicas))
    yield* Effect.forEach(replicas, (replica) =>
      Effect.gen(function*() {
        const result = yield* Effect.either(probes.replica(replica.node))
        const at = yield* Clock.currentTimeMillis
        const following = result._tag === "Right" && result.right.state?._tag === "Following"
        yield* STM.commit(STM.zipRight(
          result._tag === "Right" ? TRef.set(replica.probe, { ...result.right, at }) : STM.void,
          TRef.update(replica.health, (health) => ({ ...health, up: following, streak: following ? 1 : 0 }))
        ))
        if (!following && result._tag === "Right") {
          yield* Effect.logWarning(`replica ${replica.node.id} is out of rotation at start: ${result.right.error}`)
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
      const replicas = yield* STM.commit(TRef.get(topology.replicas))
      for (const replica of replicas) {
        yield* Effect.forkScoped(watchReplica(topology, replica, health, options.probe, watch))
      }
    })
  )

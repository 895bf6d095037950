/** @internal */
// The watchers: one fiber per replica and one for the primary, their cadence and their start.
import * as Health from "@effect-sql-router/core/Health"
import * as Probing from "@effect-sql-router/core/Probing"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as Node from "../../Node.js"
import type * as RouterConfig from "../../RouterConfig.js"
import type * as Topology from "../../Topology.js"
import { describe } from "../errors.js"
import * as NodeInternal from "../node.js"
import * as SelectionInternal from "../routing/selection.js"
import { liveClock, PoolBusy, servedOf, waitingOf } from "./probeQuery.js"
import { checkReplica, recordLook, updateGauges } from "./verdicts.js"
import type { Probes } from "./probes.js"

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
 * flight), statements in flight and how many of them wait for a connection.
 * Counters the statements already keep: no cost on the statement path.
 */
const trafficSince = (seen: Seen, node: Node.Node, inFlight: number): Probing.Traffic => {
  const served = servedOf(node)
  const failed = NodeInternal.failuresOf(node)
  const traffic: Probing.Traffic = {
    completed: Math.max(0, served - seen.served - Math.max(0, inFlight - seen.inFlight)),
    failed: failed - seen.failed,
    inFlight,
    waiting: inFlight > 0 ? waitingOf(node.pool) : 0
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
        up: Health.probesUp(state),
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
      return Health.isMember(yield* STM.commit(TRef.get(replica.health)))
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
      // Its pool completed statements meanwhile: the primary answers, the look was only crowded out.
      if (lsn.left instanceof PoolBusy) return true
      yield* Effect.logWarning(`primary probe failed: ${describe(lsn.left)}`)
      return false
    }),
    { watch }
  )

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
          TRef.update(replica.health, (health) => Health.afterStartProbe(health, following))
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

/** @internal */
// A replica's probe judged against the primary, and a look recorded: hysteresis, metrics, log.
import * as Health from "@effect-sql-router/core/Health"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Result from "effect/Result"
import * as TxRef from "effect/TxRef"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as Node from "../../Node.js"
import * as Topology from "../../Topology.js"
import { describe } from "../errors.js"
import { healthTransitions, healthyReplicas, probeFailures, replicaLagBytes, replicaLagMillis } from "../metrics.js"
import * as Catalog from "./catalog.js"
import * as Waiting from "./waiting.js"
import { PoolBusy } from "./probeQuery.js"

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

/** A replica's slow start in milliseconds, if on (a probe's verdict and a mark by hand bring it back alike). @internal */
export const slowStartMillis = (thresholds: Pick<Thresholds, "slowStart">): number | undefined =>
  thresholds.slowStart === undefined ? undefined : Duration.toMillis(thresholds.slowStart)

/**
 * Records a probe and applies hysteresis (`Health.afterProbe` in the core): out
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
    if (!Health.isMember(health)) return undefined
    yield* TxRef.set(replica.probe, probe)
    const effect = Health.effectOf(probe)
    if (effect === "hold") return undefined
    // Slow start is in real time, as the read path's ramp draws are.
    const next = Health.afterProbe(health, effect, thresholds, slowStartMillis(thresholds), Date.now())
    if (next === undefined) return undefined
    yield* TxRef.set(replica.health, next.health)
    return next.transition
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
    : Health.isMarkedDown(replica.health.value)
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
      if (!Health.probesUp(health)) yield* Effect.logWarning(`replica ${replica.node.id} stays out of rotation: ${recorded.error}`)
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

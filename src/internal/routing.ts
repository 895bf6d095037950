/** @internal */
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Node from "../Node.js"
import type * as RouterConfig from "../RouterConfig.js"
import * as Selection from "../Selection.js"
import type * as Topology from "../Topology.js"
import { describe, isConnectionError } from "./errors.js"
import type * as HealthMonitorInternal from "./healthMonitor.js"
import { healthTransitions } from "./metrics.js"

// The primitives every routing path shares: the router's internal state, the
// route FiberRef, replica selection with in-flight bookkeeping, and passive
// failure marking. The router, consistency and the routed client build on it.

/** @internal */
export type Route = "auto" | "primary" | "replica"

/** @internal */
export const currentRoute = globalValue(
  Symbol.for("effect-sql-router/SqlRouter/currentRoute"),
  () => FiberRef.unsafeMake<Route>("auto")
)


/** The requirement a read carries from the configuration's `maxLag`. @internal */
export const configRequirement = (config: RouterConfig.Resolved): Selection.Requirement =>
  config.maxLag.time === undefined && config.maxLag.bytes === undefined
    ? Selection.anyHealthy
    : {
      maxLagMillis: config.maxLag.time === undefined ? undefined : Duration.toMillis(config.maxLag.time),
      maxLagBytes: config.maxLag.bytes,
      minLsn: undefined
    }

/** @internal */
export interface Internals {
  readonly topology: Topology.Topology
  readonly config: RouterConfig.Resolved
  readonly requirement: Selection.Requirement
  readonly reactivity: Reactivity.Reactivity["Type"]
  /** The router's scope: node pools and probe fibers added later live here. */
  readonly scope: Scope.Scope
  /** Each node's pool in a scope of its own, closed when the node is removed. */
  readonly nodeScopes: Map<Node.Node, Scope.CloseableScope>
  readonly probes: HealthMonitorInternal.Probes
  /** `pg_control_system().system_identifier` of the primary: causal tokens name their cluster. */
  readonly systemIdentifier: string
}

/**
 * Picks a replica and counts the read in flight, in one STM transaction.
 * @internal
 */
export const pickReplica = (
  internals: Internals,
  requirement: Selection.Requirement
): Effect.Effect<Option.Option<Topology.Replica>> => {
  if (internals.config.selection === "random") {
    return Effect.flatMap(Random.next, (r) => STM.commit(Selection.acquire("random", internals.topology, requirement, r)))
  }
  if (requirement !== internals.requirement) {
    return STM.commit(Selection.acquire(internals.config.selection, internals.topology, requirement, 0))
  }
  // The common case, per statement: one transaction description, built once.
  let pick = defaultPicks.get(internals)
  if (pick === undefined) {
    pick = STM.commit(Selection.acquire(internals.config.selection, internals.topology, requirement, 0))
    defaultPicks.set(internals, pick)
  }
  return pick
}

const defaultPicks = new WeakMap<Internals, Effect.Effect<Option.Option<Topology.Replica>>>()

/** @internal */
export const releaseReplica = (replica: Topology.Replica): Effect.Effect<void> =>
  STM.commit(Selection.release(replica))

/**
 * A failure seen by real work on a replica: a connection-class error takes
 * it out of rotation at once (passive detection); the probes bring it back.
 * @internal
 */
export const observeFailure = (replica: Topology.Replica, failure: unknown): Effect.Effect<void> => {
  // Regions report an Effect Cause; statements report the error itself.
  const error = Cause.isCause(failure) ? Cause.squash(failure) : failure
  return isConnectionError(error)
    ? Effect.flatMap(
      STM.commit(TRef.modify(replica.health, (health) =>
        health.member
          ? [health.up, { ...health, up: false, streak: 0 }] as const
          : [false, health] as const
      )),
      (wasHealthy) =>
        wasHealthy
          ? Effect.logWarning(`replica ${replica.node.id} left rotation: ${describe(error)}`).pipe(
            Effect.zipRight(Metric.increment(Metric.tagged(healthTransitions, "to", "unhealthy")))
          )
          : Effect.void
    )
    : Effect.void
}


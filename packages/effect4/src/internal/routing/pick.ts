/** @internal */
import * as CoreSelection from "@effect-sql-router/core/Selection"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as TxRef from "effect/TxRef"
import type * as Selection from "../../Selection.js"
import * as Topology from "../../Topology.js"
import type { RouterState } from "../routerState.js"
import * as SelectionInternal from "./selection.js"

// Picking a replica by the configured strategy, and giving its in-flight
// count back: the read decision's and the DDL barrier's shared step.

// Reading and releasing outside a transaction.

/**
 * The current value of a TRef, read outside a transaction (see
 * selection.ts: one STM commit runs at a time, synchronously).
 * @internal
 */
export const peek: <A>(ref: TxRef.TxRef<A>) => A = SelectionInternal.peek

/**
 * Gives back a read's in-flight count from a driver callback, where no fiber
 * runs, the way a commit would.
 * @internal
 */
export const unsafeRelease: (replica: Topology.Replica) => void = SelectionInternal.unsafeRelease

/** Each replica's release, made once: a read gives its count back without allocating an effect. */
const releases = new WeakMap<Topology.Replica, Effect.Effect<void>>()

/** @internal */
export const releaseReplica = (replica: Topology.Replica): Effect.Effect<void> => {
  let release = releases.get(replica)
  if (release === undefined) {
    release = Effect.sync(() => SelectionInternal.unsafeRelease(replica))
    releases.set(replica, release)
  }
  return release
}

// Choosing a replica.

/**
 * Picks a replica and counts the read in flight, now, for a strategy that
 * draws no random number (`undefined`: none fits). No transaction: the
 * strategy reads the topology's TRefs as they are and writes the cursor and
 * the in-flight count the way a commit does, in one synchronous step.
 * @internal
 */
export const pickNow = (state: RouterState, requirement: Selection.Requirement): Topology.Replica | undefined =>
  SelectionInternal.unsafeAcquire(
    CoreSelection.strategies[state.config.selection],
    state.topology,
    requirement,
    0,
    state.config.health.slowStart !== undefined
  )

/** Whether the configured strategy can pick with `pickNow`. @internal */
export const picksNow = (state: RouterState): boolean => !CoreSelection.strategies[state.config.selection].usesRandom

/**
 * Picks a replica and counts the read in flight, as an effect: `random`
 * draws from Effect's `Random` (so a seeded one reproduces the choice).
 * @internal
 */
export const pickReplica = (
  state: RouterState,
  requirement: Selection.Requirement
): Effect.Effect<Option.Option<Topology.Replica>> => {
  const strategy = CoreSelection.strategies[state.config.selection]
  const slowStart = state.config.health.slowStart !== undefined
  return strategy.usesRandom
    ? Effect.map(Random.next, (draw) =>
      Option.fromNullishOr(SelectionInternal.unsafeAcquire(strategy, state.topology, requirement, draw, slowStart)))
    : Effect.sync(() => Option.fromNullishOr(SelectionInternal.unsafeAcquire(strategy, state.topology, requirement, 0, slowStart)))
}

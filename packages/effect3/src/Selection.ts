/**
 * Replica selection strategies as pure STM functions over the topology. Each
 * looks only at eligible replicas (healthy, within the lag bound, caught up
 * with the caller's causal position) and returns one of them, or none.
 *
 * @since 0.1.0
 */
import * as CoreSelection from "@effect-sql-router/core/Selection"
import * as Option from "effect/Option"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import * as RouterConfig from "./RouterConfig.js"
import type { Selection } from "./RouterConfig.js"
import * as internal from "./internal/routing/selection.js"
import type * as Topology from "./Topology.js"

/**
 * What a read needs from a replica beyond health. `undefined` fields impose
 * nothing; a bound that a replica's last probe cannot vouch for excludes it.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirement = CoreSelection.Requirement

/**
 * No requirement beyond health.
 *
 * @since 0.1.0
 * @category constructors
 */
export const anyHealthy: Requirement = CoreSelection.anyHealthy

/**
 * The same requirement, with replicas within their slow start taken in full:
 * the second try when the ramp left no replica.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ignoringRamp: (requirement: Requirement) => Requirement = CoreSelection.ignoringRamp

// The STM driver of the strategies (the core's `Selection` holds the choices
// themselves): one snapshot of the replicas' references, then the pure choice.

const see = (replica: Topology.Replica): STM.STM<CoreSelection.Seen> =>
  STM.zipWith(
    TRef.get(replica.health),
    STM.zip(TRef.get(replica.probe), TRef.get(replica.inFlight)),
    (health, [probe, inFlight]) => ({ health, probe, inFlight })
  )

/**
 * In rotation and, when the requirement bounds lag or position, within them
 * by the replica's last probe.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isEligible = (replica: Topology.Replica, requirement: Requirement): STM.STM<boolean> =>
  STM.map(see(replica), (seen) => CoreSelection.isEligible(internal.seen, seen, 0, requirement))

const run = (
  strategy: CoreSelection.Strategy,
  topology: Topology.Topology,
  requirement: Requirement,
  random: number
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.flatMap(TRef.get(topology.replicas), (replicas) =>
    STM.flatMap(TRef.get(topology.cursor), (cursor) =>
      STM.flatMap(STM.forEach(replicas, see), (seen) => {
        const position = strategy.choose(seen, cursor, requirement, random, internal.seen)
        if (position === undefined) return none
        const chosen = Option.some(replicas[position]!)
        return strategy.movesCursor ? STM.as(TRef.set(topology.cursor, position + 1), chosen) : STM.succeed(chosen)
      })))

const none = STM.succeed(Option.none<Topology.Replica>())

/**
 * The next eligible replica from the round-robin cursor, which moves past it.
 *
 * @since 0.1.0
 * @category selection
 */
export const roundRobin = (
  topology: Topology.Topology,
  requirement: Requirement
): STM.STM<Option.Option<Topology.Replica>> => run(CoreSelection.strategies["round-robin"], topology, requirement, 0)

/**
 * A uniformly chosen eligible replica. `random` is a number in [0, 1) drawn
 * from Effect's `Random` outside the transaction, so a seeded `Random` makes
 * the choice reproducible.
 *
 * @since 0.1.0
 * @category selection
 */
export const random = (
  topology: Topology.Topology,
  requirement: Requirement,
  random: number
): STM.STM<Option.Option<Topology.Replica>> => run(CoreSelection.strategies.random, topology, requirement, random)

/**
 * The eligible replica with the fewest reads and leases in flight; ties go to
 * the first after the cursor.
 *
 * @since 0.1.0
 * @category selection
 */
export const leastConnections = (
  topology: Topology.Topology,
  requirement: Requirement
): STM.STM<Option.Option<Topology.Replica>> => run(CoreSelection.strategies["least-connections"], topology, requirement, 0)

/**
 * The eligible replica with the least replay lag (bytes) at its last probe;
 * a replica never probed counts as furthest behind.
 *
 * @since 0.1.0
 * @category selection
 */
export const leastLag = (
  topology: Topology.Topology,
  requirement: Requirement
): STM.STM<Option.Option<Topology.Replica>> => run(CoreSelection.strategies["least-lag"], topology, requirement, 0)

/**
 * The strategy names: the configuration's tuple (`RouterConfig.selections`),
 * from which the `Name` type and the configuration's Schema literal are built.
 *
 * @since 0.1.0
 * @category models
 */
export const names: typeof RouterConfig.selections = RouterConfig.selections

/**
 * A strategy's name.
 *
 * @since 0.1.0
 * @category models
 */
export type Name = RouterConfig.Selection

/**
 * One way to choose a replica. `random` is a number in [0, 1) drawn outside
 * the transaction, only for strategies that say they use it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Strategy {
  readonly name: Name
  /** Whether `select` reads its `random` argument (the router draws one per pick only then). */
  readonly usesRandom: boolean
  readonly select: (
    topology: Topology.Topology,
    requirement: Requirement,
    random: number
  ) => STM.STM<Option.Option<Topology.Replica>>
}

const strategy = <K extends Name>(name: K): Strategy & { readonly name: K } => {
  const choice = CoreSelection.strategies[name]
  return {
    name,
    usesRandom: choice.usesRandom,
    select: (topology, requirement, random) => run(choice, topology, requirement, random)
  }
}

/**
 * Every strategy, by name, as STM. The choices themselves live in one record
 * (the core's `Selection.strategies`), which the read path runs outside a
 * transaction: a new strategy is one entry there, one here, and its name in
 * the core's `Selection.names`.
 *
 * @since 0.1.0
 * @category selection
 */
export const strategies: { readonly [K in Name]: Strategy & { readonly name: K } } = {
  "round-robin": strategy("round-robin"),
  "random": strategy("random"),
  "least-connections": strategy("least-connections"),
  "least-lag": strategy("least-lag")
}

/**
 * Picks by the configured strategy.
 *
 * @since 0.1.0
 * @category selection
 */
export const select = (
  strategy: Selection,
  topology: Topology.Topology,
  requirement: Requirement,
  randomValue: number
): STM.STM<Option.Option<Topology.Replica>> => strategies[strategy].select(topology, requirement, randomValue)

/**
 * Selects and counts the read as in flight, in one transaction.
 *
 * @since 0.1.0
 * @category selection
 */
export const acquire = (
  strategy: Selection,
  topology: Topology.Topology,
  requirement: Requirement,
  randomValue: number
): STM.STM<Option.Option<Topology.Replica>> => STM.tap(select(strategy, topology, requirement, randomValue), countInFlight)

const countInFlight = (chosen: Option.Option<Topology.Replica>): STM.STM<void> =>
  Option.isSome(chosen) ? TRef.update(chosen.value.inFlight, (n) => n + 1) : STM.void

/**
 * `acquire` with `health.slowStart` on: when replicas within their ramp were
 * skipped and no other fits, the pick is made again taking them in full (a
 * ramping replica is still better than none).
 *
 * @since 0.1.0
 * @category selection
 */
export const acquireWithSlowStart = (
  strategy: Selection,
  topology: Topology.Topology,
  requirement: Requirement,
  randomValue: number
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.tap(
    STM.flatMap(select(strategy, topology, requirement, randomValue), (chosen) =>
      Option.isSome(chosen) ? STM.succeed(chosen) : select(strategy, topology, ignoringRamp(requirement), randomValue)),
    countInFlight
  )

/**
 * Counts a read chosen by `acquire` as no longer in flight.
 *
 * @since 0.1.0
 * @category selection
 */
export const release = (replica: Topology.Replica): STM.STM<void> => TRef.update(replica.inFlight, (n) => n - 1)

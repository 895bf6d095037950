/**
 * Replica selection strategies as transactions over the topology's `TxRef`s.
 * Each looks only at eligible replicas (healthy, within the lag bound, caught
 * up with the caller's causal position) and returns one of them, or none.
 * Every function here is one `Effect.tx` transaction on its own and joins the
 * caller's when run inside one.
 *
 * @since 0.1.0
 */
import * as CoreSelection from "@effect-sql-router/core/Selection"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as TxRef from "effect/TxRef"
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

// The transactional driver of the strategies (the core's `Selection` holds
// the choices themselves): one snapshot of the replicas' references, then the
// pure choice.

const see = (replica: Topology.Replica): Effect.Effect<CoreSelection.Seen> =>
  Effect.tx(Effect.gen(function*() {
    const health = yield* TxRef.get(replica.health)
    const probe = yield* TxRef.get(replica.probe)
    const inFlight = yield* TxRef.get(replica.inFlight)
    return { health, probe, inFlight }
  }))

/**
 * In rotation and, when the requirement bounds lag or position, within them
 * by the replica's last probe.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isEligible = (replica: Topology.Replica, requirement: Requirement): Effect.Effect<boolean> =>
  Effect.map(see(replica), (seen) => CoreSelection.isEligible(internal.seen, seen, 0, requirement))

const run = (
  strategy: CoreSelection.Strategy,
  topology: Topology.Topology,
  requirement: Requirement,
  random: number
): Effect.Effect<Option.Option<Topology.Replica>> =>
  Effect.tx(Effect.gen(function*() {
    const replicas = yield* TxRef.get(topology.replicas)
    const cursor = yield* TxRef.get(topology.cursor)
    const seen = yield* Effect.forEach(replicas, see)
    const position = strategy.choose(seen, cursor, requirement, random, internal.seen)
    if (position === undefined) return Option.none<Topology.Replica>()
    if (strategy.movesCursor) yield* TxRef.set(topology.cursor, position + 1)
    return Option.some(replicas[position]!)
  }))

/**
 * The next eligible replica from the round-robin cursor, which moves past it.
 *
 * @since 0.1.0
 * @category selection
 */
export const roundRobin = (
  topology: Topology.Topology,
  requirement: Requirement
): Effect.Effect<Option.Option<Topology.Replica>> => run(CoreSelection.strategies["round-robin"], topology, requirement, 0)

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
): Effect.Effect<Option.Option<Topology.Replica>> => run(CoreSelection.strategies.random, topology, requirement, random)

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
): Effect.Effect<Option.Option<Topology.Replica>> =>
  run(CoreSelection.strategies["least-connections"], topology, requirement, 0)

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
): Effect.Effect<Option.Option<Topology.Replica>> => run(CoreSelection.strategies["least-lag"], topology, requirement, 0)

/**
 * The strategy names: the core's tuple (`RouterConfig.selections` is the
 * same), from which the `Name` type and the configuration's Schema literal
 * are built.
 *
 * @since 0.1.0
 * @category models
 */
export const names: typeof CoreSelection.names = CoreSelection.names

/**
 * A strategy's name.
 *
 * @since 0.1.0
 * @category models
 */
export type Name = CoreSelection.Name

/**
 * One way to choose a replica. `random` is a number in [0, 1) drawn outside
 * the transaction, only for strategies that say they use it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Strategy<K extends Name = Name> {
  readonly name: K
  /** Whether `select` reads its `random` argument (the router draws one per pick only then). */
  readonly usesRandom: boolean
  readonly select: (
    topology: Topology.Topology,
    requirement: Requirement,
    random: number
  ) => Effect.Effect<Option.Option<Topology.Replica>>
}

const strategy = <K extends Name>(name: K): Strategy<K> => {
  const choice = CoreSelection.strategies[name]
  return {
    name,
    usesRandom: choice.usesRandom,
    select: (topology, requirement, random) => run(choice, topology, requirement, random)
  }
}

/**
 * Every strategy, by name, as a transaction. The choices themselves live in
 * one record (the core's `Selection.strategies`), which the read path runs
 * outside a transaction; this record is built from the core's names, so a
 * new strategy is one entry in the core and its name in `Selection.names`.
 *
 * @since 0.1.0
 * @category selection
 */
export const strategies: { readonly [K in Name]: Strategy<K> } = Object.fromEntries(
  names.map((name) => [name, strategy(name)])
) as { readonly [K in Name]: Strategy<K> }

/**
 * Picks by the configured strategy.
 *
 * @since 0.1.0
 * @category selection
 */
export const select = (
  strategy: Name,
  topology: Topology.Topology,
  requirement: Requirement,
  randomValue: number
): Effect.Effect<Option.Option<Topology.Replica>> => strategies[strategy].select(topology, requirement, randomValue)

const countInFlight = (chosen: Option.Option<Topology.Replica>): Effect.Effect<void> =>
  Option.isSome(chosen) ? TxRef.update(chosen.value.inFlight, (n) => n + 1) : Effect.void

/**
 * Selects and counts the read as in flight, in one transaction.
 *
 * @since 0.1.0
 * @category selection
 */
export const acquire = (
  strategy: Name,
  topology: Topology.Topology,
  requirement: Requirement,
  randomValue: number
): Effect.Effect<Option.Option<Topology.Replica>> =>
  Effect.tx(Effect.tap(select(strategy, topology, requirement, randomValue), countInFlight))

/**
 * `acquire` with `health.slowStart` on: when replicas within their ramp were
 * skipped and no other fits, the pick is made again taking them in full (a
 * ramping replica is still better than none).
 *
 * @since 0.1.0
 * @category selection
 */
export const acquireWithSlowStart = (
  strategy: Name,
  topology: Topology.Topology,
  requirement: Requirement,
  randomValue: number
): Effect.Effect<Option.Option<Topology.Replica>> =>
  Effect.tx(Effect.tap(
    Effect.flatMap(select(strategy, topology, requirement, randomValue), (chosen) =>
      Option.isSome(chosen) ? Effect.succeed(chosen) : select(strategy, topology, ignoringRamp(requirement), randomValue)),
    countInFlight
  ))

/**
 * Counts a read chosen by `acquire` as no longer in flight.
 *
 * @since 0.1.0
 * @category selection
 */
export const release = (replica: Topology.Replica): Effect.Effect<void> => TxRef.update(replica.inFlight, (n) => n - 1)

/**
 * Replica selection strategies as pure STM functions over the topology. Each
 * looks only at eligible replicas (healthy, within the lag bound, caught up
 * with the caller's causal position) and returns one of them, or none.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type { Selection } from "./RouterConfig.js"
import * as Topology from "./Topology.js"

/**
 * What a read needs from a replica beyond health. `undefined` fields impose
 * nothing; a bound that a replica's last probe cannot vouch for excludes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Requirement {
  readonly maxLagMillis: number | undefined
  readonly maxLagBytes: number | undefined
  /** The replica must have replayed at least this WAL position (read-your-writes). */
  readonly minLsn: bigint | undefined
}

/**
 * No requirement beyond health.
 *
 * @since 0.1.0
 * @category constructors
 */
export const anyHealthy: Requirement = { maxLagMillis: undefined, maxLagBytes: undefined, minLsn: undefined }

/**
 * @since 0.1.0
 * @category combinators
 */
export const isEligible = (replica: Topology.Replica, requirement: Requirement): STM.STM<boolean> =>
  STM.flatMap(Topology.isHealthy(replica), (healthy) => {
    if (!healthy) return STM.succeed(false)
    if (requirement === anyHealthy) return STM.succeed(true)
    return STM.map(TRef.get(replica.probe), (probe) => withinBounds(probe, requirement))
  })

const withinBounds = (probe: Topology.Probe | undefined, requirement: Requirement): boolean => {
  if (requirement.maxLagMillis !== undefined && !(probe?.lagMillis !== undefined && probe.lagMillis <= requirement.maxLagMillis)) {
    return false
  }
  if (requirement.maxLagBytes !== undefined && !(probe?.lagBytes !== undefined && probe.lagBytes <= requirement.maxLagBytes)) {
    return false
  }
  if (requirement.minLsn !== undefined && !(probe?.replayLsn !== undefined && probe.replayLsn >= requirement.minLsn)) {
    return false
  }
  return true
}

/** The eligible replicas, listed from the cursor onwards so that ties rotate. */
const candidates = (
  topology: Topology.Topology,
  requirement: Requirement
): STM.STM<ReadonlyArray<Topology.Replica>> =>
  STM.gen(function*() {
    const replicas = yield* TRef.get(topology.replicas)
    const start = yield* TRef.get(topology.cursor)
    const out: Array<Topology.Replica> = []
    for (let i = 0; i < replicas.length; i++) {
      const replica = replicas[(start + i) % replicas.length]!
      if (yield* isEligible(replica, requirement)) out.push(replica)
    }
    return out
  })

/** Moves the cursor past the chosen replica. */
const advance = (topology: Topology.Topology, chosen: Topology.Replica): STM.STM<Option.Option<Topology.Replica>> =>
  STM.flatMap(TRef.get(topology.replicas), (replicas) =>
    STM.as(TRef.set(topology.cursor, replicas.indexOf(chosen) + 1), Option.some(chosen)))

/**
 * The next eligible replica after the previous pick, in configuration order.
 *
 * @since 0.1.0
 * @category selection
 */
export const roundRobin = (
  topology: Topology.Topology,
  requirement: Requirement
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.flatMap(candidates(topology, requirement), (eligible) =>
    eligible.length === 0 ? STM.succeed(Option.none()) : advance(topology, eligible[0]!))

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
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.gen(function*() {
    const replicas = yield* TRef.get(topology.replicas)
    const eligible: Array<Topology.Replica> = []
    for (const replica of replicas) if (yield* isEligible(replica, requirement)) eligible.push(replica)
    return eligible.length === 0
      ? Option.none()
      : Option.some(eligible[Math.min(eligible.length - 1, Math.floor(random * eligible.length))]!)
  })

/** The eligible replica with the least of `measure`; ties go to the first after the cursor. */
const least = (
  topology: Topology.Topology,
  requirement: Requirement,
  measure: (replica: Topology.Replica) => STM.STM<number>
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.gen(function*() {
    const eligible = yield* candidates(topology, requirement)
    let best: Topology.Replica | undefined
    let bestValue = Infinity
    for (const replica of eligible) {
      const value = yield* measure(replica)
      if (best === undefined || value < bestValue) {
        best = replica
        bestValue = value
      }
    }
    return best === undefined ? Option.none() : yield* advance(topology, best)
  })

/**
 * The eligible replica with the fewest reads and leases in flight.
 *
 * @since 0.1.0
 * @category selection
 */
export const leastConnections = (
  topology: Topology.Topology,
  requirement: Requirement
): STM.STM<Option.Option<Topology.Replica>> => least(topology, requirement, (replica) => TRef.get(replica.inFlight))

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
): STM.STM<Option.Option<Topology.Replica>> =>
  least(topology, requirement, (replica) =>
    STM.map(TRef.get(replica.probe), (probe) => probe?.lagBytes ?? Number.MAX_SAFE_INTEGER))

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
): STM.STM<Option.Option<Topology.Replica>> => {
  switch (strategy) {
    case "round-robin":
      return roundRobin(topology, requirement)
    case "random":
      return random(topology, requirement, randomValue)
    case "least-connections":
      return leastConnections(topology, requirement)
    case "least-lag":
      return leastLag(topology, requirement)
  }
}

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
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.tap(select(strategy, topology, requirement, randomValue), (chosen) =>
    Option.isSome(chosen) ? TRef.update(chosen.value.inFlight, (n) => n + 1) : STM.void)

/**
 * @since 0.1.0
 * @category selection
 */
export const release = (replica: Topology.Replica): STM.STM<void> => TRef.update(replica.inFlight, (n) => n - 1)

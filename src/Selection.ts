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
import * as RouterConfig from "./RouterConfig.js"
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
  /** True: a replica within its slow start counts as fully in rotation (no other replica fits). */
  readonly ignoreRamp?: boolean | undefined
}

/**
 * No requirement beyond health.
 *
 * @since 0.1.0
 * @category constructors
 */
export const anyHealthy: Requirement = { maxLagMillis: undefined, maxLagBytes: undefined, minLsn: undefined }

const anyHealthyIgnoringRamp: Requirement = { ...anyHealthy, ignoreRamp: true }

/**
 * The same requirement, with replicas within their slow start taken in full:
 * the second try when the ramp left no replica.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ignoringRamp = (requirement: Requirement): Requirement =>
  requirement === anyHealthy ? anyHealthyIgnoringRamp : { ...requirement, ignoreRamp: true }

// The slow start's draws: a golden-ratio sequence in [0, 1), so the admitted
// share follows the ramp closely with no call to Random on the read path.
let rampDraw = 0
const nextRampDraw = (): number => (rampDraw = (rampDraw + 0.6180339887498949) % 1)

/** Within its slow start, a replica is skipped with probability 1 - elapsed/slowStart. */
const rampSkips = (health: Topology.Health, requirement: Requirement): boolean =>
  health.ramp !== undefined && requirement.ignoreRamp !== true &&
  !Topology.rampAdmits(health.ramp, Date.now(), nextRampDraw())

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

const yes = STM.succeed(true)
const no = STM.succeed(false)

/**
 * In rotation and, when the requirement bounds lag or position, within them
 * by the replica's last probe.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isEligible = (replica: Topology.Replica, requirement: Requirement): STM.STM<boolean> =>
  STM.flatMap(TRef.get(replica.health), (health) =>
    !Topology.inRotation(health) || rampSkips(health, requirement)
      ? no
      : requirement === anyHealthy || requirement === anyHealthyIgnoringRamp
      ? yes
      : STM.map(TRef.get(replica.probe), (probe) => withinBounds(probe, requirement)))

// The strategies below are written as plain recursion over STM steps, not
// STM.gen: a routing decision runs per statement and must stay cheap.

const none = STM.succeed(Option.none<Topology.Replica>())

/** Counts one more read in flight on the chosen replica and moves the cursor past it. */
const choose = (topology: Topology.Topology, chosen: Topology.Replica, position: number) =>
  STM.zipRight(TRef.set(topology.cursor, position + 1), STM.succeed(Option.some(chosen)))

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
  STM.flatMap(TRef.get(topology.replicas), (replicas) =>
    STM.flatMap(TRef.get(topology.cursor), (start) => {
      const n = replicas.length
      const tryFrom = (i: number): STM.STM<Option.Option<Topology.Replica>> => {
        if (i >= n) return none
        const position = (start + i) % n
        const replica = replicas[position]!
        return STM.flatMap(isEligible(replica, requirement), (ok) => ok ? choose(topology, replica, position) : tryFrom(i + 1))
      }
      return tryFrom(0)
    }))

/** The eligible replicas with their positions, listed from `start` onwards. */
const collectEligible = (
  replicas: ReadonlyArray<Topology.Replica>,
  start: number,
  requirement: Requirement
): STM.STM<ReadonlyArray<readonly [Topology.Replica, number]>> => {
  const n = replicas.length
  const out: Array<readonly [Topology.Replica, number]> = []
  const collect = (i: number): STM.STM<ReadonlyArray<readonly [Topology.Replica, number]>> => {
    if (i >= n) return STM.succeed(out)
    const position = (start + i) % n
    const replica = replicas[position]!
    return STM.flatMap(isEligible(replica, requirement), (ok) => {
      if (ok) out.push([replica, position])
      return collect(i + 1)
    })
  }
  return collect(0)
}

/** From the cursor onwards, so that ties rotate. */
const eligibleFromCursor = (topology: Topology.Topology, requirement: Requirement) =>
  STM.flatMap(TRef.get(topology.replicas), (replicas) =>
    STM.flatMap(TRef.get(topology.cursor), (start) => collectEligible(replicas, start, requirement)))

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
  STM.flatMap(TRef.get(topology.replicas), (replicas) =>
    STM.map(collectEligible(replicas, 0, requirement), (eligible) =>
      eligible.length === 0
        ? Option.none()
        : Option.some(eligible[Math.min(eligible.length - 1, Math.floor(random * eligible.length))]![0])))

/** The eligible replica with the least of `measure`; ties go to the first after the cursor. */
const least = (
  topology: Topology.Topology,
  requirement: Requirement,
  measure: (replica: Topology.Replica) => STM.STM<number>
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.flatMap(eligibleFromCursor(topology, requirement), (eligible) => {
    let best: readonly [Topology.Replica, number] | undefined
    let bestValue = Infinity
    const scan = (i: number): STM.STM<Option.Option<Topology.Replica>> => {
      if (i >= eligible.length) return best === undefined ? none : choose(topology, best[0], best[1])
      const candidate = eligible[i]!
      return STM.flatMap(measure(candidate[0]), (value) => {
        if (best === undefined || value < bestValue) {
          best = candidate
          bestValue = value
        }
        return scan(i + 1)
      })
    }
    return scan(0)
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

/**
 * Every strategy, by name: a new strategy is one entry here (and its name in `names`).
 *
 * @since 0.1.0
 * @category selection
 */
export const strategies: { readonly [K in Name]: Strategy & { readonly name: K } } = {
  "round-robin": { name: "round-robin", usesRandom: false, select: (topology, requirement) => roundRobin(topology, requirement) },
  "random": { name: "random", usesRandom: true, select: random },
  "least-connections": {
    name: "least-connections",
    usesRandom: false,
    select: (topology, requirement) => leastConnections(topology, requirement)
  },
  "least-lag": { name: "least-lag", usesRandom: false, select: (topology, requirement) => leastLag(topology, requirement) }
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
): STM.STM<Option.Option<Topology.Replica>> =>
  STM.tap(select(strategy, topology, requirement, randomValue), (chosen) =>
    Option.isSome(chosen) ? TRef.update(chosen.value.inFlight, (n) => n + 1) : STM.void)

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
  STM.flatMap(select(strategy, topology, requirement, randomValue), (chosen) =>
    Option.isSome(chosen)
      ? STM.as(TRef.update(chosen.value.inFlight, (n) => n + 1), chosen)
      : acquire(strategy, topology, ignoringRamp(requirement), randomValue))

/**
 * Counts a read chosen by `acquire` as no longer in flight.
 *
 * @since 0.1.0
 * @category selection
 */
export const release = (replica: Topology.Replica): STM.STM<void> => TRef.update(replica.inFlight, (n) => n - 1)

/**
 * The router's shared state, in `TxRef`s: the current primary, the replicas
 * with their health, in-flight counts and last probe, and the round-robin
 * cursor. Every health change is one transaction (`Effect.tx`) over these
 * references. A routed read's pick reads them outside a transaction and
 * writes the cursor and its in-flight count the way a commit does, in one
 * synchronous step, so no transaction sees half of it; `Selection`'s
 * functions make the same choices inside a transaction of your own.
 *
 * @since 0.1.0
 */
import * as ReplicaHealth from "@effect-sql-router/core/Health"
import * as Effect from "effect/Effect"
import * as TxRef from "effect/TxRef"
import type * as Node from "./Node.js"

/**
 * What the last health probe of a replica saw. Lag is measured against the
 * primary: bytes of WAL not yet replayed, and time since the primary's newest
 * commit that the replica has not replayed (0 when it has replayed everything).
 *
 * @since 0.1.0
 * @category models
 */
export type Probe = ReplicaHealth.Probe

/**
 * A replica's health, one of a few named states in one value, so that a
 * routing decision reads one reference per replica: `InRotation` (with its
 * slow start's `ramp`, if any), `OutOfRotation` (by its probes or a failure in
 * its traffic), `MarkedDown` (held out by hand; `up` is what probes say) and
 * `Removed`. Each has the hysteresis `streak` but `Removed`.
 *
 * @since 0.1.0
 * @category models
 */
export type Health = ReplicaHealth.Standing

/**
 * A replica's slow start: from its return to rotation (`from`, epoch
 * milliseconds from `Date.now()`) its share of reads grows linearly to the
 * full share over `millis`.
 *
 * @since 0.1.0
 * @category models
 */
export type Ramp = ReplicaHealth.Ramp

/**
 * Whether a read may go to a replica within its ramp: `draw` is a number in
 * [0, 1), and the read is admitted when it is below the elapsed fraction of
 * the ramp (so a replica is skipped with probability 1 - elapsed/millis).
 *
 * @since 0.1.0
 * @category combinators
 */
export const rampAdmits: (ramp: Ramp, now: number, draw: number) => boolean = ReplicaHealth.rampAdmits

/**
 * One replica's state: its node, health, in-flight count and last probe.
 *
 * @since 0.1.0
 * @category models
 */
export interface Replica {
  readonly node: Node.Node
  readonly health: TxRef.TxRef<Health>
  /** Reads and leases running on this replica now (least-connections reads it). */
  readonly inFlight: TxRef.TxRef<number>
  readonly probe: TxRef.TxRef<Probe | undefined>
}

/**
 * The cluster as the router sees it: the current primary, the replicas and the
 * round-robin cursor.
 *
 * @since 0.1.0
 * @category models
 */
export interface Topology {
  readonly primary: TxRef.TxRef<Node.Node>
  readonly replicas: TxRef.TxRef<ReadonlyArray<Replica>>
  /** The next round-robin position. */
  readonly cursor: TxRef.TxRef<number>
  /** The primary's WAL position at its last probe (for lag and promotion checks). */
  readonly primaryLsn: TxRef.TxRef<bigint | undefined>
  /** Nodes that all accept writes (split brain): writes fail while it is not empty. */
  readonly conflict: TxRef.TxRef<ReadonlyArray<string>>
}

/**
 * The state of one replica, with the health it starts with.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReplica = (node: Node.Node, healthy: boolean): Effect.Effect<Replica> =>
  Effect.sync(() => ({
    node,
    health: TxRef.makeUnsafe<Health>(ReplicaHealth.initial(healthy)),
    inFlight: TxRef.makeUnsafe(0),
    probe: TxRef.makeUnsafe<Probe | undefined>(undefined)
  }))

/**
 * The topology of a primary and its replicas, with the cursor at the first
 * replica.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (primary: Node.Node, replicas: ReadonlyArray<Replica>): Effect.Effect<Topology> =>
  Effect.sync(() => ({
    primary: TxRef.makeUnsafe(primary),
    replicas: TxRef.makeUnsafe(replicas),
    cursor: TxRef.makeUnsafe(0),
    primaryLsn: TxRef.makeUnsafe<bigint | undefined>(undefined),
    conflict: TxRef.makeUnsafe<ReadonlyArray<string>>([])
  }))

/**
 * In rotation: a member, healthy by probes, and not marked down by hand.
 *
 * @since 0.1.0
 * @category combinators
 */
export const inRotation: (health: Health) => health is ReplicaHealth.InRotation = ReplicaHealth.inRotation

/**
 * Whether the replica is in rotation now (inside `Effect.tx`, as the
 * transaction sees it).
 *
 * @since 0.1.0
 * @category combinators
 */
export const isHealthy = (replica: Replica): Effect.Effect<boolean> => Effect.map(TxRef.get(replica.health), inRotation)

/**
 * The number of replicas in rotation now: one transaction, or part of the
 * caller's.
 *
 * @since 0.1.0
 * @category combinators
 */
export const countHealthy = (topology: Topology): Effect.Effect<number> =>
  Effect.tx(Effect.flatMap(TxRef.get(topology.replicas), (replicas) =>
    Effect.map(Effect.forEach(replicas, isHealthy), (flags) => flags.filter(Boolean).length)))

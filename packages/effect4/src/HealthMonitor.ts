/**
 * Background health and lag probes. Every node is probed on a `Schedule`
 * (one fiber each, forked into the router's scope, each probe bounded by a
 * timeout in real time) over a session of the node's own `@effect/sql-pg`
 * pool: an idle one, or a short checkout. No connection is held for probes
 * alone. A probe that hangs (a frozen server) fails at its timeout without
 * waiting for its statement, which the driver cancels in the background. When
 * the pool is crowded (every session taken and no room for another, checkouts
 * waiting, or, on a multiplexed pool, any session carrying statements), the
 * probe asks on a connection of its own, closed at once, so that long
 * statements on every pooled session never make a healthy server look dead; a
 * checkout that waited its whole timeout in a pool that stayed crowded
 * reports `Busy` and changes nothing.
 *
 * Admission follows the primary: a replica enters rotation (first entry and
 * every return) only when it is `Following` — its WAL receiver streams from
 * the current primary, on the primary's timeline, and its replay position is
 * not ahead of the primary's. A node on another timeline, ahead of the
 * primary, or streaming from another node the router knows is `Diverged` and
 * leaves rotation at once; it stays out until it follows (e.g. after
 * `pg_rewind` or a re-clone). A standby that answers but does not stream from
 * the primary is `Detached` (a failed probe for hysteresis). While the primary
 * itself does not answer, nothing can be verified: replicas are `Stranded`,
 * those in rotation stay (reads go on when the primary dies) and none enters.
 * The sender is matched by the address the router uses for the primary, or
 * the address the primary reports for itself; a sender the router does not
 * know (a service name, a proxy) is judged by timeline and position alone.
 * The WAL receiver's details need `pg_read_all_stats` (e.g. `pg_monitor`);
 * without it the router cannot see the sender or timeline and admits on
 * position alone (`Following` with `verified: false`).
 *
 * Hysteresis: a replica leaves rotation after `failureThreshold` consecutive
 * failed probes (default 1: a dead replica should cost no reads) and returns
 * after `successThreshold` consecutive good ones (default 2: a flapping one
 * should not come back on one lucky probe). Connection-class errors seen by
 * real queries take a replica out at once (passive detection); the probes
 * bring it back.
 *
 * Manual marks: `markReplicaUnhealthy` holds a replica out until
 * `markReplicaHealthy`, whatever the probes say. `markReplicaHealthy` lifts
 * the mark and puts the replica in rotation at once; from then on the probes
 * decide again (a dead replica leaves at its next failed probe).
 *
 * Clock: `health.clock: "live"` (default) runs the schedule in real time,
 * also under `TestClock`; `"ambient"` uses the fiber's clock, so unit tests
 * with stubbed probes drive them with `TestClock.adjust`. A probe's timeout is
 * real time either way (a real probe's I/O does not wait for `TestClock`).
 *
 * Lag: the primary's probe records its current WAL position; a replica's
 * probe records its replay position. Byte lag is the difference; time lag is
 * zero when the replica has replayed everything (an idle primary does not make
 * replicas look stale) and otherwise the age of its last replayed commit,
 * which never underestimates.
 *
 * @since 0.1.0
 */
import type * as Health from "@effect-sql-router/core/Health"
import type * as Effect from "effect/Effect"
import type * as Node from "./Node.js"
import type * as Topology from "./Topology.js"

/**
 * A replica entering (`up`) or leaving (`down`) rotation.
 *
 * @since 0.1.0
 * @category models
 */
export type Transition = Health.Transition

/**
 * What the last probe saw of a replica, as one of a few named states (see the
 * module's description for how each one moves the replica in or out): the
 * core's `Health.ReplicaState`.
 *
 * @since 0.1.0
 * @category models
 */
export type ReplicaState = Health.ReplicaState

/**
 * One probe of one replica: its replay position and lag, or a failure.
 *
 * @since 0.1.0
 * @category models
 */
export type ProbeFn = (node: Node.Node) => Effect.Effect<Omit<Topology.Probe, "at">, unknown>

/**
 * What `replicaStatus` reports for each node (the seed's `getReplicaStatus`).
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeStatus {
  readonly id: string
  readonly role: Node.Role
  readonly address: string
  /** In rotation: healthy by probes and not marked down by hand (always true for the primary). */
  readonly healthy: boolean
  readonly markedDown: boolean
  readonly lagBytes: number | undefined
  readonly lagMillis: number | undefined
  /** Replay position of a replica, current position of the primary, as `16/B374D848`. */
  readonly lsn: string | undefined
  readonly inFlight: number
  readonly lastError: string | undefined
  /** Epoch milliseconds of the last probe. */
  readonly lastProbeAt: number | undefined
  /** What the last probe saw (`Primary` for the primary; undefined before the first probe). */
  readonly state: ReplicaState["_tag"] | "Primary" | undefined
}

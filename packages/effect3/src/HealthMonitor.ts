/**
 * Background health and lag probes, from traffic first. The primary's watcher
 * asks the primary one statement per look: its role, WAL position and
 * timeline, and `pg_stat_replication` (every standby's state, replay position,
 * lag and last reply). A replica the primary reports streaming, with a reply
 * younger than `health.replyTimeout`, takes that report as its look and gets
 * no statement. Looks follow the traffic: after a calm look (no statement on
 * any node since the previous one, the same primary and timeline, no replica
 * transition) the next waits twice as long, from `health.interval` up to
 * `health.maxInterval`; anything else brings it back to `interval`. Each
 * replica's watcher (a fiber of its own, forked into the router's scope)
 * ticks every `interval` and decides with the core's `Probing.planReplica`:
 * it probes the replica itself on its first look, when its reads fail on the
 * connection or hang while none completes (at once), while it is out of
 * rotation, when the report shows it not streaming, stale or gone, and, with
 * no report naming it, when its own delay is up.
 *
 * A probe borrows a connection of the node's own pool only when one is idle
 * and the node served statements since its previous probe; otherwise it runs
 * on a one-off connection (`<applicationName>:probe`), closed at once, so
 * that no connection is kept alive by health checks and an idle router's
 * pools drain to `minConnections` after `idleTimeout`. Each probe is bounded
 * by a timeout in real time: one that hangs (a frozen server) fails at its
 * timeout and its connection is destroyed, so the pool never waits on it. A
 * pool with nothing idle is never asked to lend a connection, so long
 * statements on every connection never make a healthy server look dead.
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

/**
 * Background health and lag probes. Every node is probed on a `Schedule`
 * (one fiber each, forked into the router's scope, each probe bounded by a
 * timeout) over a dedicated connection that does not compete with the pools.
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
 * Lag: the primary's probe records its current WAL position; a replica's
 * probe records its replay position. Byte lag is the difference; time lag is
 * zero when the replica has replayed everything (an idle primary does not make
 * replicas look stale) and otherwise the age of its last replayed commit,
 * which never underestimates.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Node from "./Node.js"
import type * as Topology from "./Topology.js"

/**
 * A replica entering (`up`) or leaving (`down`) rotation.
 *
 * @since 0.1.0
 * @category models
 */
export type Transition = "up" | "down"

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
}

/** @internal */
import * as Health from "@effect-sql-router/core/Health"
import * as Effect from "effect/Effect"
import * as TxRef from "effect/TxRef"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as Node from "../../Node.js"
import type * as RouterConfig from "../../RouterConfig.js"
import { UnknownReplica } from "../../RouterError.js"
import type * as SqlRouter from "../../SqlRouter.js"
import * as Topology from "../../Topology.js"
import * as HealthMonitorInternal from "../health/monitor.js"
import * as Membership from "../health/membership.js"
import * as Verdicts from "../health/verdicts.js"
import * as Waiting from "../health/waiting.js"
import type { RouterState } from "../routerState.js"

// Administration: what the router reports (stats, status, configuration)
// and what an operator changes by hand (replicas in and out, promotion).

const nodeStats = (node: Node.Node): Effect.Effect<SqlRouter.NodeStats> =>
  Effect.map(node.stats, (pool) => ({
    id: node.id,
    role: node.role,
    address: node.address,
    pool,
    served: { reads: node.served.reads, writes: node.served.writes }
  }))

/** @internal */
export type Admin = Pick<
  SqlRouter.SqlRouter,
  | "replicaStatus"
  | "currentConfig"
  | "addReplica"
  | "removeReplica"
  | "promote"
  | "markReplicaHealthy"
  | "markReplicaUnhealthy"
  | "stats"
>

/** A replica by its index or id. */
const findReplica = (topology: Topology.Topology, replica: number | string) =>
  Effect.flatMap(Effect.tx(TxRef.get(topology.replicas)), (replicas) => {
    const found = typeof replica === "number" ? replicas[replica] : replicas.find((r) => r.node.id === replica)
    return found ? Effect.succeed(found) : Effect.fail(new UnknownReplica({ replica }))
  })

/** Marks a replica healthy or unhealthy by hand. */
const setManual = (internals: RouterState, replica: number | string, down: boolean) => {
  const slowStartMillis = Verdicts.slowStartMillis(internals.config.health)
  return Effect.flatMap(findReplica(internals.topology, replica), (found) =>
    // Down holds it out whatever probes say. A manual "healthy" is taken at its
    // word now (back from out of rotation with a slow start, if on); probes may disagree later.
    Effect.tx(TxRef.update(found.health, (health) => Health.mark(health, down, slowStartMillis, Date.now()))).pipe(
      // Marked out: the reads waiting on it run elsewhere now.
      Effect.andThen(Effect.sync(() => down && Waiting.releaseWaiting(found))),
      Effect.andThen(Effect.logInfo(`replica ${found.node.id} marked ${down ? "unhealthy" : "healthy"} by hand`))
    ))
}

/** Pool and routing figures of every node. */
const routerStats = (internals: RouterState): Effect.Effect<SqlRouter.Stats> => {
  const { topology } = internals
  return Effect.flatMap(
    Effect.tx(Effect.gen(function*() {
      const primary = yield* TxRef.get(topology.primary)
      const replicas = yield* TxRef.get(topology.replicas)
      const states = yield* Effect.forEach(replicas, (replica) =>
        Effect.all({ healthy: Topology.isHealthy(replica), inFlight: TxRef.get(replica.inFlight) }))
      const barrier = yield* TxRef.get(internals.schemaBarrier)
      return { primary, replicas, states, barrier }
    })),
    ({ barrier, primary, replicas, states }) =>
      Effect.map(
        Effect.all({
          primary: nodeStats(primary),
          replicas: Effect.forEach(replicas, (replica, i) =>
            Effect.map(nodeStats(replica.node), (node) => ({ ...node, ...states[i]! })))
        }),
        ({ primary, replicas }) => ({
          primary,
          replicas,
          healthyReplicaCount: states.filter((s) => s.healthy).length,
          schemaBarrier: barrier === undefined ? undefined : HealthMonitorInternal.formatLsn(barrier)
        })
      )
  )
}

/** What the health monitor knows of every node, the primary first. */
const replicaStatus = (topology: Topology.Topology): Effect.Effect<ReadonlyArray<HealthMonitor.NodeStatus>> =>
  Effect.tx(Effect.gen(function*() {
    const primary = yield* TxRef.get(topology.primary)
    const primaryLsn = yield* TxRef.get(topology.primaryLsn)
    const replicas = yield* TxRef.get(topology.replicas)
    const statuses: Array<HealthMonitor.NodeStatus> = [{
      id: primary.id,
      role: "primary",
      address: primary.address,
      healthy: true,
      markedDown: false,
      lagBytes: 0,
      lagMillis: 0,
      lsn: primaryLsn === undefined ? undefined : HealthMonitorInternal.formatLsn(primaryLsn),
      inFlight: 0,
      lastError: undefined,
      lastProbeAt: undefined,
      state: "Primary"
    }]
    for (const replica of replicas) {
      const probe = yield* TxRef.get(replica.probe)
      statuses.push({
        id: replica.node.id,
        role: "replica",
        address: replica.node.address,
        healthy: yield* Topology.isHealthy(replica),
        markedDown: Health.isMarkedDown(yield* TxRef.get(replica.health)),
        lagBytes: probe?.lagBytes,
        lagMillis: probe?.lagMillis,
        lsn: probe?.replayLsn === undefined ? undefined : HealthMonitorInternal.formatLsn(probe.replayLsn),
        inFlight: yield* TxRef.get(replica.inFlight),
        lastError: probe?.error,
        lastProbeAt: probe?.at,
        state: probe?.state?._tag
      })
    }
    return statuses
  }))

/** The configuration as the router runs it now: its nodes as they are, in the shape it was given. */
const currentConfig = (internals: RouterState): Effect.Effect<RouterConfig.RouterConfig> => {
  const { config } = internals
  return Effect.map(Membership.allNodes(internals.topology), ([primary, ...replicas]): RouterConfig.RouterConfig => {
    // The input the resolved config came from: `"catalog"` is how the catalog is asked for.
    const { direct: _d, discovery, primary: _p, replicas: _r, sideEffectCatalog, sideEffectFunctions, ...resolved } =
      config
    const rest = { ...resolved, sideEffectFunctions: sideEffectCatalog ? "catalog" as const : sideEffectFunctions }
    // A list of direct URLs is kept only whole: one per node, as the configuration requires.
    const directOf = (nodes: ReadonlyArray<Node.Node>) =>
      nodes.every((n) => n.direct !== undefined) ? nodes.map((n) => n.direct!) : undefined
    const hosts = discovery === "auto" ? directOf([primary!, ...replicas]) : undefined
    const direct = discovery === "auto"
      ? hosts && { hosts }
      : primary!.direct !== undefined || replicas.some((n) => n.direct !== undefined)
      ? { primary: primary!.direct, replicas: replicas.length === 0 ? undefined : directOf(replicas) }
      : undefined
    return {
      ...rest,
      ...(direct === undefined ? {} : { direct }),
      ...(discovery === "auto"
        ? { discovery, hosts: [primary!, ...replicas].map((n) => n.url) }
        : { discovery, primary: primary!.url, replicas: replicas.map((n) => n.url) })
    }
  })
}

/** @internal */
export const makeAdmin = (internals: RouterState): Admin => ({
  replicaStatus: replicaStatus(internals.topology),
  currentConfig: currentConfig(internals),
  addReplica: (url, options) => Membership.addReplica(internals, url, options?.id, options?.direct),
  removeReplica: (replica) => Membership.removeReplica(internals, replica),
  promote: (replica, options) => Membership.promote(internals, replica, options?.maxLag ?? 0),
  markReplicaHealthy: (replica) => setManual(internals, replica, false),
  markReplicaUnhealthy: (replica) => setManual(internals, replica, true),
  stats: routerStats(internals)
})

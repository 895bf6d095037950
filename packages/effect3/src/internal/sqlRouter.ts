/** @internal */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import * as RouterConfig from "../RouterConfig.js"
import type * as SqlRouter from "../SqlRouter.js"
import * as Topology from "../Topology.js"
import * as HealthMonitorInternal from "./health/monitor.js"
import * as Membership from "./health/membership.js"
import * as PatroniSource from "./health/patroni.js"
import type { ClientOptions, RouterState } from "./routerState.js"
import { configRequirement, peek } from "./routing/decision.js"
import * as Admin from "./sqlRouter/admin.js"
import * as Leases from "./sqlRouter/leases.js"
import * as Regions from "./sqlRouter/regions.js"

// The router: its state made at start (discovery, topology, health monitor)
// and the service over it, assembled from regions, leases and admin (each
// under ./sqlRouter/).

/** @internal */
export const tag = Context.GenericTag<SqlRouter.SqlRouter>("effect-sql-router/SqlRouter")

/** @internal */
export { healthTransitions, statements } from "./metrics.js"

/** @internal */
export type { RouterState } from "./routerState.js"

/** @internal */
export { configRequirement, currentRoute, observeFailure, pickReplica, releaseReplica, type Route } from "./routing/decision.js"

/** @internal */
export const fromState = (internals: RouterState): SqlRouter.SqlRouter => {
  const { config, topology } = internals
  const regions = Regions.makeRegions(internals)
  return {
    config,
    systemIdentifier: internals.systemIdentifier,
    topology,
    primary: Regions.currentPrimary(topology),
    replicas: Effect.map(STM.commit(TRef.get(topology.replicas)), (rs) => rs.map((r) => r.node)),
    ...regions,
    withPrimary: regions.withWrite,
    ...Leases.makeLeases(internals),
    ...Admin.makeAdmin(internals),
    countHealthyReplicas: STM.commit(Topology.countHealthy(topology)),
    hasReplicas: Effect.map(STM.commit(TRef.get(topology.replicas)), (rs) => rs.length > 0)
  }
}

/** @internal */
export const makeState = (
  input: RouterConfig.RouterConfig,
  clientOptions?: ClientOptions | undefined
): Effect.Effect<RouterState, SqlRouter.BuildError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* RouterConfig.resolve(input)
    const reactivity = yield* Effect.serviceOption(Reactivity.Reactivity).pipe(
      Effect.flatMap(Option.match({ onSome: Effect.succeed, onNone: () => Reactivity.make }))
    )
    const scope = yield* Effect.scope
    const factory: Membership.NodeFactory = { config, reactivity, scope, nodeScopes: new Map(), clientOptions }
    const start = yield* Membership.startTopology(factory)
    const topology = yield* STM.commit(
      STM.flatMap(
        STM.forEach(start.replicas, ([node, healthy]) => Topology.makeReplica(node, healthy)),
        (replicas) => Topology.make(start.primary, replicas)
      )
    )
    const base = HealthMonitorInternal.makeProbes(topology, config.health.timeout)
    // With discovery, a replica that accepts writes was promoted by someone
    // else: discovery learns now, not at its next round, whether the primary
    // moved or two nodes accept writes (a split brain, where reads must leave
    // the old primary).
    const patroni = config.patroni === undefined ? undefined : PatroniSource.make(config.patroni)
    const discovered: HealthMonitorInternal.Probes = config.discovery === "auto"
      ? {
        ...base,
        replica: (node) =>
          Effect.tap(base.replica(node), (judged) =>
            judged.state?._tag === "Writable" && peek(topology.conflict).length === 0
              ? Effect.forkIn(Membership.discoverOnce(internals), scope)
              : Effect.void)
      }
      : base
    // While Patroni is trusted, replicas take their health from it (no statement on them).
    const probes: HealthMonitorInternal.Probes = patroni === undefined
      ? discovered
      : { ...discovered, replica: PatroniSource.probeReplica(patroni, discovered.replica) }
    const internals: RouterState = {
      ...factory,
      topology,
      requirement: configRequirement(config),
      probes,
      patroni,
      systemIdentifier: start.systemIdentifier,
      schemaBarrier: yield* TRef.make<bigint | undefined>(undefined)
    }
    if (config.health.enabled) {
      // Patroni's first round, before admission: the leader it names is the primary, and replicas are judged by it.
      if (patroni !== undefined) yield* HealthMonitorInternal.onClock(config.health, Membership.discover(internals))
      // First entry: a replica is in rotation only if it follows the primary.
      yield* HealthMonitorInternal.onClock(config.health, HealthMonitorInternal.admitAtStart(topology, probes))
      yield* HealthMonitorInternal.start({
        topology,
        health: config.health,
        probe: probes.replica,
        probePrimary: probes.primary,
        watch: probes.watch,
        primaryLoop: config.discovery === "auto"
          // The round's look at the current primary answered when it left a report.
          ? Effect.map(Membership.discoverOnce(internals), () => probes.watch.report !== undefined)
          : undefined
      })
    }
    return internals
  })

/** @internal */
export const make = (input: RouterConfig.RouterConfig) =>
  Effect.map(makeState(input), fromState)

/** @internal */
export const context = (router: SqlRouter.SqlRouter, client: PgClient.PgClient) =>
  Context.make(tag, router).pipe(
    Context.add(SqlClient.SqlClient, client as SqlClient.SqlClient),
    Context.add(PgClient.PgClient, client)
  )

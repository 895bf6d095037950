/** @internal */
import type * as Reactivity from "@effect/experimental/Reactivity"
import type * as Scope from "effect/Scope"
import type * as TRef from "effect/TRef"
import type * as Node from "../Node.js"
import type * as RouterConfig from "../RouterConfig.js"
import type * as Selection from "../Selection.js"
import type * as Topology from "../Topology.js"
import type * as HealthMonitorInternal from "./health/monitor.js"
import type * as PatroniSource from "./health/patroni.js"

// The router's state, which every internal module reads: its own module so
// that none of them imports the read decision (routing/decision.ts) for a type.

/** What the routed client applies on every node (PgClient's options). @internal */
export interface ClientOptions {
  readonly transformResultNames?: ((s: string) => string) | undefined
  readonly transformQueryNames?: ((s: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  readonly types?: import("pg").CustomTypesConfig | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly applicationName?: string | undefined
}

/** The router's state: its topology, resolved config and what it owns. @internal */
export interface RouterState {
  readonly topology: Topology.Topology
  readonly config: RouterConfig.Resolved
  readonly requirement: Selection.Requirement
  readonly reactivity: Reactivity.Reactivity["Type"]
  /** The router's scope: node pools and probe fibers added later live here. */
  readonly scope: Scope.Scope
  /** Each node's pool in a scope of its own, closed when the node is removed. */
  readonly nodeScopes: Map<Node.Node, Scope.CloseableScope>
  readonly probes: HealthMonitorInternal.Probes
  /** With `patroni` configured: the Patroni source, which names the primary while it answers. */
  readonly patroni?: PatroniSource.Source | undefined
  /** `pg_control_system().system_identifier` of the primary: causal tokens name their cluster. */
  readonly systemIdentifier: string
  /** Client options applied on every node's `PgClient` and pool. */
  readonly clientOptions?: ClientOptions | undefined
  /**
   * The DDL barrier: the primary's position after the last schema change the
   * router routed, until every healthy replica has replayed it. While set,
   * reads go only to replicas at or past it (or to the primary).
   */
  readonly schemaBarrier: TRef.TRef<bigint | undefined>
}

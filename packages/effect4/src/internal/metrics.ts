/** @internal */
import * as Metric from "effect/Metric"

/** @internal */
export const statements = Metric.counter("effect_sql_router_statements", {
  description: "Statements and regions routed, by node and intent",
  incremental: true
})

/** @internal */
export const healthTransitions = Metric.counter("effect_sql_router_health_transitions", {
  description: "Replicas entering (to=healthy) or leaving (to=unhealthy) rotation",
  incremental: true
})

/** @internal */
export const probeFailures = Metric.counter("effect_sql_router_probe_failures", {
  description: "Health probes that failed or timed out, by node",
  incremental: true
})

/** @internal */
export const healthyReplicas = Metric.gauge("effect_sql_router_healthy_replicas", {
  description: "Replicas in rotation"
})

/** @internal */
export const replicaLagBytes = Metric.gauge("effect_sql_router_replica_lag_bytes", {
  description: "WAL bytes a replica has not replayed, at its last probe"
})

/** @internal */
export const replicaLagMillis = Metric.gauge("effect_sql_router_replica_lag_millis", {
  description: "Replay delay of a replica at its last probe"
})

/** @internal */
export const hedgedReads = Metric.counter("effect_sql_router_hedged_reads", {
  description: "Reads also started on a second replica (hedgeAfter), by the node of the second",
  incremental: true
})

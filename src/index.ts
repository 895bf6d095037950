/**
 * effect-sql-router: one PostgreSQL primary and many streaming replicas used
 * as one database from Effect and `@effect/sql`.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as Classifier from "./Classifier.js"

/**
 * @since 0.1.0
 */
export * as Durable from "./Durable.js"

/**
 * @since 0.1.0
 */
export * as CausalToken from "./CausalToken.js"

/**
 * @since 0.1.0
 */
export * as Consistency from "./Consistency.js"

/**
 * @since 0.1.0
 */
export * as HealthMonitor from "./HealthMonitor.js"

/**
 * @since 0.1.0
 */
export * as Node from "./Node.js"

/**
 * @since 0.1.0
 */
export * as RoutedClient from "./RoutedClient.js"

/**
 * @since 0.1.0
 */
export * as RouterConfig from "./RouterConfig.js"

/**
 * @since 0.1.0
 */
export * as RouterError from "./RouterError.js"

/**
 * @since 0.1.0
 */
export * as Selection from "./Selection.js"

/**
 * @since 0.1.0
 */
export * as SqlRouter from "./SqlRouter.js"

/**
 * @since 0.1.0
 */
export * as Topology from "./Topology.js"

/**
 * Change data capture from the primary over logical replication, and CDC
 * rules that apply it to another store.
 *
 * @since 0.1.0
 */
export * as Cdc from "./Cdc.js"

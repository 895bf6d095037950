/**
 * Decides whether a PostgreSQL statement may run on a streaming replica.
 *
 * The classifier is conservative: misrouting a write to a replica is a bug,
 * misrouting a read to the primary only costs load, so anything it does not
 * understand is a write. It lives in the effect-free core
 * (`@effect-sql-router/core/Classifier`), shared by every Effect line; this
 * module is the same API under this package's name.
 *
 * @since 0.1.0
 */
export * from "@effect-sql-router/core/Classifier"

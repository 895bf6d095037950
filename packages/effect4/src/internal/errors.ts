/** @internal */
// The failure classes live in the effect-free core.
export * from "@effect-sql-router/core/PgErrors"

/** @internal */
import * as Schema from "effect/Schema"

// The persisted form of CDC rules. It depends on nothing but Schema so that
// RouterConfig can embed it without importing the CDC runtime. Every field is
// plain JSON: encoding is the identity.

const identifier = (what: string) =>
  Schema.String.pipe(
    Schema.filter((s) => /^[a-z_][a-z0-9_]{0,62}$/.test(s), {
      message: () => `${what} must be 1 to 63 lowercase letters, digits or underscores, not starting with a digit`
    })
  )

const RuleName = Schema.String.pipe(
  Schema.filter((s) => /^[a-z_][a-z0-9_]{0,39}$/.test(s), {
    message: () => "must be 1 to 40 lowercase letters, digits or underscores, not starting with a digit"
  })
)

const TableName = Schema.String.pipe(
  Schema.filter((s) => /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/.test(s), {
    message: () => "must be a table name, optionally schema-qualified (\"users\", \"sales.orders\")"
  })
)

/** @internal */
export const Rule = Schema.Struct({
  name: RuleName,
  tables: Schema.Array(TableName).pipe(Schema.minItems(1, { message: () => "must list at least one table" })),
  target: Schema.String.annotations({ message: () => "must be the name of a target given to the Cdc layer" }),
  conflictResolution: Schema.optional(
    Schema.Literal("source-wins").annotations({ message: () => "must be \"source-wins\"" })
  ),
  slot: Schema.optional(identifier("slot")),
  publication: Schema.optional(identifier("publication")),
  snapshot: Schema.optional(Schema.Boolean),
  failover: Schema.optional(Schema.Boolean),
  maxRetainedWalBytes: Schema.optional(
    Schema.Number.pipe(Schema.filter((n) => Number.isInteger(n) && n > 0, { message: () => "must be a whole number of bytes above 0" }))
  ),
  enabled: Schema.optional(Schema.Boolean),
  snapshotChunkSize: Schema.optional(
    Schema.Number.pipe(
      Schema.filter((n) => Number.isInteger(n) && n > 0 && n <= 1_000_000, {
        message: () => "must be a whole number of rows from 1 to 1000000"
      })
    )
  ),
  schemaChanges: Schema.optional(Schema.Literal("fail", "apply").annotations({ message: () => "must be \"fail\" or \"apply\"" })),
  truncate: Schema.optional(Schema.Literal("apply", "fail").annotations({ message: () => "must be \"apply\" or \"fail\"" })),
  unsupportedTypes: Schema.optional(
    Schema.Literal("fail", "text").annotations({ message: () => "must be \"fail\" or \"text\"" })
  ),
  batchSize: Schema.optional(
    Schema.Number.pipe(
      Schema.filter((n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000, {
        message: () => "must be a whole number of changes from 1 to 1000000"
      })
    )
  ),
  atomicity: Schema.optional(
    Schema.Literal("transaction", "batch").annotations({ message: () => "must be \"transaction\" or \"batch\"" })
  )
})

/** @internal */
export const Config = Schema.Struct({
  rules: Schema.Array(Rule)
})

/** @internal */
import * as Schema from "effect/Schema"

// The persisted form of CDC rules. It depends on nothing but Schema so that
// RouterConfig can embed it without importing the CDC runtime. Every field is
// plain JSON: encoding is the identity.

const matching = (pattern: RegExp, message: string) =>
  Schema.String.check(Schema.makeFilter((s: string) => pattern.test(s), { message }))

const identifier = (what: string) =>
  matching(
    /^[a-z_][a-z0-9_]{0,62}$/,
    `${what} must be 1 to 63 lowercase letters, digits or underscores, not starting with a digit`
  )

const RuleName = matching(
  /^[a-z_][a-z0-9_]{0,39}$/,
  "must be 1 to 40 lowercase letters, digits or underscores, not starting with a digit"
)

const TableName = matching(
  /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/,
  "must be a table name, optionally schema-qualified (\"users\", \"sales.orders\")"
)

/** @internal */
export const Rule = Schema.Struct({
  name: RuleName,
  tables: Schema.Array(TableName).check(Schema.isMinLength(1, { message: "must list at least one table" })),
  target: Schema.String.annotate({ message: "must be the name of a target given to the Cdc layer" }),
  conflictResolution: Schema.optional(
    Schema.Literal("source-wins").annotate({ message: "must be \"source-wins\"" })
  ),
  slot: Schema.optional(identifier("slot")),
  publication: Schema.optional(identifier("publication")),
  snapshot: Schema.optional(Schema.Boolean),
  failover: Schema.optional(Schema.Boolean),
  maxRetainedWalBytes: Schema.optional(
    Schema.Number.check(
      Schema.makeFilter((n: number) => Number.isInteger(n) && n > 0, { message: "must be a whole number of bytes above 0" })
    )
  ),
  enabled: Schema.optional(Schema.Boolean),
  snapshotChunkSize: Schema.optional(
    Schema.Number.check(
      Schema.makeFilter((n: number) => Number.isInteger(n) && n > 0 && n <= 1_000_000, {
        message: "must be a whole number of rows from 1 to 1000000"
      })
    )
  ),
  schemaChanges: Schema.optional(Schema.Literals(["fail", "apply"]).annotate({ message: "must be \"fail\" or \"apply\"" })),
  truncate: Schema.optional(Schema.Literals(["apply", "fail"]).annotate({ message: "must be \"apply\" or \"fail\"" })),
  unsupportedTypes: Schema.optional(
    Schema.Literals(["fail", "text"]).annotate({ message: "must be \"fail\" or \"text\"" })
  ),
  batchSize: Schema.optional(
    Schema.Number.check(
      Schema.makeFilter((n: number) => Number.isInteger(n) && n >= 1 && n <= 1_000_000, {
        message: "must be a whole number of changes from 1 to 1000000"
      })
    )
  ),
  atomicity: Schema.optional(
    Schema.Literals(["transaction", "batch"]).annotate({ message: "must be \"transaction\" or \"batch\"" })
  )
})

/** @internal */
export const Config = Schema.Struct({
  rules: Schema.Array(Rule)
})

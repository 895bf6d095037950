/** @internal */
import * as Schema from "effect/Schema"

// The CDC errors; `Cdc` re-exports each with its documentation.

/** @internal */
export class ReplicationError extends Schema.TaggedError<ReplicationError>("effect-sql-router/Cdc/ReplicationError")(
  "ReplicationError",
  {
    operation: Schema.String,
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {
  override get message(): string {
    return `CDC ${this.operation} failed: ${this.reason}`
  }
}

/** @internal */
export class TargetError extends Schema.TaggedError<TargetError>("effect-sql-router/Cdc/TargetError")(
  "TargetError",
  {
    operation: Schema.String,
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {
  override get message(): string {
    return `CDC target ${this.operation} failed: ${this.reason}`
  }
}

/** @internal */
export class UnsupportedType extends Schema.TaggedError<UnsupportedType>("effect-sql-router/Cdc/UnsupportedType")(
  "UnsupportedType",
  {
    table: Schema.String,
    column: Schema.String,
    type: Schema.String
  }
) {
  override get message(): string {
    return `CDC cannot replicate ${this.table}.${this.column}: type ${this.type} is not supported`
  }
}

/** @internal */
export class MissingPrimaryKey extends Schema.TaggedError<MissingPrimaryKey>(
  "effect-sql-router/Cdc/MissingPrimaryKey"
)("MissingPrimaryKey", {
  table: Schema.String,
  reason: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `CDC cannot replicate ${this.table}: ${this.reason ?? "it has no primary key"}`
  }
}

/** @internal */
export class UnknownTable extends Schema.TaggedError<UnknownTable>("effect-sql-router/Cdc/UnknownTable")(
  "UnknownTable",
  { table: Schema.String, reason: Schema.optional(Schema.String) }
) {
  override get message(): string {
    return this.reason ? `CDC: table ${this.table} ${this.reason}` : `CDC: no table ${this.table} on the primary`
  }
}

/** @internal */
export class UnknownRule extends Schema.TaggedError<UnknownRule>("effect-sql-router/Cdc/UnknownRule")(
  "UnknownRule",
  { name: Schema.String }
) {
  override get message(): string {
    return `CDC: no rule named ${this.name}`
  }
}

/** @internal */
export class InvalidRule extends Schema.TaggedError<InvalidRule>("effect-sql-router/Cdc/InvalidRule")(
  "InvalidRule",
  {
    name: Schema.String,
    field: Schema.String,
    reason: Schema.String
  }
) {
  override get message(): string {
    return `CDC rule ${this.name}: ${this.field} ${this.reason}`
  }
}

/** @internal */
export class SchemaChanged extends Schema.TaggedError<SchemaChanged>("effect-sql-router/Cdc/SchemaChanged")(
  "SchemaChanged",
  {
    table: Schema.String,
    column: Schema.String,
    change: Schema.Literals(["add", "drop", "type"]),
    oldType: Schema.optional(Schema.String),
    newType: Schema.optional(Schema.String),
    reason: Schema.optional(Schema.String)
  }
) {
  override get message(): string {
    const what = this.change === "add"
      ? `column ${this.column} was added (${this.newType})`
      : this.change === "drop"
      ? `column ${this.column} was dropped`
      : `column ${this.column} changed type from ${this.oldType} to ${this.newType}`
    return `CDC stopped at a schema change of ${this.table}: ${what}; ${
      this.reason ?? "the rule's schemaChanges is \"fail\" (alter the target by hand, or set it to \"apply\")"
    }`
  }
}

/** @internal */
export class TruncateRefused extends Schema.TaggedError<TruncateRefused>("effect-sql-router/Cdc/TruncateRefused")(
  "TruncateRefused",
  { tables: Schema.Array(Schema.String) }
) {
  override get message(): string {
    return `CDC stopped at a TRUNCATE of ${this.tables.join(", ")}: the rule's truncate is "fail"`
  }
}

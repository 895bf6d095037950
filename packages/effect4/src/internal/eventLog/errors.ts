/** @internal */
import * as Schema from "effect/Schema"

/** @internal */
export class VersionMismatch extends Schema.TaggedError<VersionMismatch>("effect-sql-router/EventLog/VersionMismatch")(
  "VersionMismatch",
  {
    assumed: Schema.Number,
    actual: Schema.Number
  }
) {
  override get message(): string {
    return `Append refused: it assumed the event log at version ${this.assumed}, but it is at ${this.actual}`
  }
}

/** @internal */
export class ProjectionNotFound
  extends Schema.TaggedError<ProjectionNotFound>("effect-sql-router/EventLog/ProjectionNotFound")(
    "ProjectionNotFound",
    { id: Schema.Number }
  )
{
  override get message(): string {
    return `Projection ${this.id} has no version yet (initProjectionVersion creates it)`
  }
}

/** @internal */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>("effect-sql-router/EventLog/InvalidEvent")(
  "InvalidEvent",
  {
    typeName: Schema.String,
    version: Schema.optional(Schema.Number),
    /** Where in the payload: `$` is the payload itself, then `.key` and `[index]`. */
    path: Schema.optional(Schema.String),
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {
  override get message(): string {
    const at = this.version === undefined ? "" : ` at version ${this.version}`
    const where = this.path === undefined ? "" : ` (payload ${this.path})`
    return `Event ${this.typeName}${at} is invalid${where}: ${this.reason}`
  }
}

/** @internal */
export class InvalidInput extends Schema.TaggedError<InvalidInput>("effect-sql-router/EventLog/InvalidInput")(
  "InvalidInput",
  {
    operation: Schema.String,
    argument: Schema.String,
    reason: Schema.String
  }
) {
  override get message(): string {
    return `EventLog.${this.operation}: ${this.argument} ${this.reason} (nothing was run)`
  }
}

/** @internal */
export class TransactionClosed
  extends Schema.TaggedError<TransactionClosed>("effect-sql-router/EventLog/TransactionClosed")(
    "TransactionClosed",
    { operation: Schema.String }
  )
{
  override get message(): string {
    return `EventLog.${this.operation} after its transaction ended: a Reader or Writer works only inside ` +
      "the readOnly or readWrite body that gave it (nothing was run)"
  }
}


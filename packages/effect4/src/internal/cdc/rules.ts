/** @internal */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import type { CdcError, Rule, Target } from "../../Cdc.js"
import { InvalidRule, UnknownRule } from "./errors.js"
import type { CdcContext } from "./context.js"
import * as Replication from "./replication.js"
import * as CdcSchema from "./schema.js"

// The rule registry: validation, the state kept per rule, persistence of the
// rule set, and removal (with the rule's slot and publication).

/** A rule and what it did so far (its `stats`). @internal */
export interface RuleState {
  rule: Rule
  running: boolean
  /** The `run` fiber, so that `removeRule` can stop it. */
  fiber: Fiber.Fiber<never, CdcError> | undefined
  changesApplied: number
  transactionsApplied: number
  lastAppliedLsn: bigint | undefined
  lastCommitTime: Date | undefined
  applyLagMillis: number | undefined
  retries: number
  errors: number
  restarts: number
  lastError: string | undefined
  /** The snapshot's progress figures (see `snapshot.ts`), once one started in this process. */
  snapshot: SnapshotStats | undefined
  /** Tables (`schema.table`) whose snapshot is unfinished, for targets without their own state (sinks). */
  sinkPending: Map<string, ReadonlyArray<string> | null>
  /** Tables (as the rule names them) asked for by `resnapshot`, taken by the next chunk of a session. */
  resnapshot: Set<string>
}

/** @internal */
export interface SnapshotStats {
  running: boolean
  table: string | undefined
  tablesDone: number
  tablesTotal: number
  rowsCopied: number
  rowsTotal: number | undefined
  startedAt: number
  endedAt: number | undefined
}

/** @internal */
export const slotOf = (rule: Rule) => rule.slot ?? `cdc_${rule.name}`
/** @internal */
export const publicationOf = (rule: Rule) => rule.publication ?? `cdc_${rule.name}`

const decodeRule = Schema.decodeUnknownResult(CdcSchema.Rule, { errors: "first", onExcessProperty: "error" })

// Each issue as the field it is about and what is wrong with it; the
// schema's own messages, in the words of the other errors.
const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => {
    switch (issue._tag) {
      case "UnexpectedKey":
        return "is not a known option"
      case "MissingKey":
        return "is missing"
      default:
        return SchemaIssue.defaultLeafHook(issue)
    }
  }
})

const validateRule = (rule: unknown, targets: Readonly<Record<string, Target>>): Result.Result<Rule, InvalidRule> => {
  const name = typeof (rule as { name?: unknown })?.name === "string" ? (rule as { name: string }).name : "(unnamed)"
  const result = decodeRule(rule)
  if (Result.isFailure(result)) {
    const issue = formatIssue(result.failure.issue).issues[0]
    return Result.fail(
      new InvalidRule({
        name,
        field: issue?.path?.map((key) => String(typeof key === "object" ? key.key : key)).join(".") || "rule",
        reason: issue?.message ?? "is invalid"
      })
    )
  }
  if (!(result.success.target in targets)) {
    return Result.fail(
      new InvalidRule({
        name,
        field: "target",
        reason: `names no target (known: ${Object.keys(targets).join(", ") || "none"})`
      })
    )
  }
  return Result.succeed(result.success)
}

/** Registers a valid rule under a free name. @internal */
export const add = (context: CdcContext, rule: unknown): Effect.Effect<void, InvalidRule> =>
  Effect.suspend(() => {
    const result = validateRule(rule, context.options.targets)
    if (Result.isFailure(result)) return Effect.fail(result.failure)
    if (context.states.has(result.success.name)) {
      return Effect.fail(new InvalidRule({ name: result.success.name, field: "name", reason: "is taken by another rule" }))
    }
    context.states.set(result.success.name, {
      rule: result.success,
      running: false,
      fiber: undefined,
      changesApplied: 0,
      transactionsApplied: 0,
      lastAppliedLsn: undefined,
      lastCommitTime: undefined,
      applyLagMillis: undefined,
      retries: 0,
      errors: 0,
      restarts: 0,
      lastError: undefined,
      snapshot: undefined,
      sinkPending: new Map(),
      resnapshot: new Set()
    })
    return Effect.void
  })

/** @internal */
export const rules = (context: CdcContext): Array<Rule> => Array.from(context.states.values(), (s) => s.rule)

/** The seed's enableAutoPersist: every change of the rule set is handed over. @internal */
export const persist = (context: CdcContext): Effect.Effect<void> =>
  Effect.suspend(() =>
    context.options.persist
      ? context.options.persist({ rules: rules(context) }).pipe(
        Effect.catchCause((cause) => Effect.logWarning("CDC rules were not persisted", cause))
      )
      : Effect.void
  )

/** @internal */
export const stateOf = (context: CdcContext, name: string): Effect.Effect<RuleState, UnknownRule> =>
  Effect.suspend(() => {
    const state = context.states.get(name)
    return state ? Effect.succeed(state) : Effect.fail(new UnknownRule({ name }))
  })

/** Stops the rule, forgets it, and drops its slot and (if ours) its publication unless `keepSlot`. @internal */
export const remove = (context: CdcContext, name: string, options?: { readonly keepSlot?: boolean | undefined }) =>
  Effect.gen(function*() {
    const state = yield* stateOf(context, name)
    context.states.delete(name)
    if (state.fiber) yield* Fiber.interrupt(state.fiber)
    yield* persist(context)
    if (options?.keepSlot) return
    yield* Effect.scoped(Effect.gen(function*() {
      const client = yield* Replication.control(yield* context.connect)
      yield* Replication.dropSlot(client, slotOf(state.rule))
      yield* Replication.dropPublication(client, publicationOf(state.rule), state.rule.name)
    }))
  })

/** @internal */
import * as Changes from "@effect-sql-router/core/cdc/Changes"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { Change, Primary, StreamOptions } from "../../Cdc.js"
import { ReplicationError } from "./errors.js"
import * as Replication from "./replication.js"
import type { TableInfo } from "./replication.js"
import { defaultApplicationName, resolvePrimary } from "./source.js"

// The public change stream (`Cdc.changes`) and `Cdc.drop`: a slot read
// without rules, acknowledged as the consumer pulls.

/** Slot and publication in place: adopted if present, else created. */
const prepareSource = (
  connect: Replication.Connect,
  client: Replication.Client,
  options: {
    readonly slot: string
    readonly publication: string
    readonly rule: string
    readonly tables: ReadonlyArray<TableInfo> | undefined
    readonly failover: boolean
  }
) =>
  Effect.gen(function*() {
    if (options.tables) yield* Replication.ensurePublication(client, options.publication, options.rule, options.tables)
    const slot = yield* Replication.slotInfo(client, options.slot)
    if (slot) {
      if (slot.plugin !== "pgoutput") {
        return yield* new ReplicationError({ operation: "slot", reason: `slot ${options.slot} is not a pgoutput logical slot` })
      }
      return Changes.parseLsn(slot.confirmed ?? "0/0")
    }
    const created = yield* Replication.createSlot(connect, options.slot, { failover: options.failover })
    return created.consistentPoint
  })

/** @internal */
export const changes = (options: StreamOptions) =>
  Stream.unwrap(Effect.gen(function*() {
    const connect = {
      url: yield* resolvePrimary(options.primary),
      applicationName: options.applicationName ?? defaultApplicationName
    }
    const client = yield* Replication.control(connect)
    // The raw stream carries any type (unsupported ones as the server's text).
    const tables = options.tables ? yield* Replication.describeTables(client, options.tables, { checkTypes: false }) : undefined
    const startLsn = yield* prepareSource(connect, client, {
      slot: options.slot,
      publication: options.publication,
      rule: options.slot,
      tables,
      failover: options.failover ?? false
    })
    const session = yield* Replication.startSession(yield* Replication.replicationConnection(connect), {
      slot: options.slot,
      publication: options.publication,
      startLsn,
      statusInterval: Duration.toMillis(options.statusInterval ?? "1 second"),
      // Enums, domains and their arrays as a rule sees them; other types as the server's text.
      types: tables?.[0]?.types
    })
    const decoder = Changes.makeDecoder()
    let pendingAck: bigint | undefined
    let inTransaction = false
    const pull: Effect.Effect<Change, ReplicationError> = Effect.gen(function*() {
      if (pendingAck !== undefined) {
        yield* session.acknowledge(pendingAck)
        pendingAck = undefined
      }
      for (;;) {
        const item = yield* session.take
        if (item._tag === "Keepalive") {
          // Everything sent before it was handled: the slot may move on.
          if (!inTransaction) yield* session.acknowledge(item.lsn)
          continue
        }
        if (item.message.tag === "relation") {
          decoder.relation(item.message)
          continue
        }
        const change = decoder.decode(item.lsn, item.message)
        if (!change) continue
        if (change._tag === "Begin") inTransaction = true
        if (change._tag === "Commit") {
          inTransaction = false
          pendingAck = Changes.parseLsn(change.endLsn)
        }
        return change
      }
    })
    return Stream.fromEffectRepeat(pull)
  }))

/** @internal */
export const drop = (options: { readonly primary: Primary; readonly slot: string; readonly publication?: string | undefined }) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Replication.control({ url: yield* resolvePrimary(options.primary), applicationName: defaultApplicationName })
    yield* Replication.dropSlot(client, options.slot)
    if (options.publication) yield* Replication.dropPublication(client, options.publication, options.slot)
  }))

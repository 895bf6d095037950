/**
 * A small Conductor-like service on the event log:
 *
 * - commands decide on a replica (the account's balance as of version v) and
 *   append on the primary assuming v; when the log moved, `VersionMismatch`
 *   sends them back to decide again;
 * - a projection (account balances) follows `EventLog.listen`, reads the new
 *   events on replicas, and stores the balances with its projection version
 *   in one primary transaction, so it resumes exactly where it stopped;
 * - every read and write says where it ran.
 *
 *   npm run example:event-log
 *
 * Without `DATABASE_URL` it starts a throwaway embedded primary + 2 replicas;
 * with it (and `DATABASE_REPLICA_URLS`), it uses those servers and creates
 * `bank_log`, `bank_log_projection` and `bank_balances` there.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { pathToFileURL } from "node:url"
import { Consistency, EventLog, RouterConfig, SqlRouter } from "@effect-sql-router/effect4"
import { PgCluster } from "@effect-sql-router/effect4/testing"

// -----------------------------------------------------------------------------
// Events
// -----------------------------------------------------------------------------

const Deposited = Schema.Struct({ account: Schema.String, amount: Schema.Int })
const Withdrawn = Schema.Struct({ account: Schema.String, amount: Schema.Int })

const payloads = { Deposited, Withdrawn }

const PROJECTION = 1

/** Where a statement ran: `primary :5432` or `replica :5433`. */
const here = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ replica: boolean; port: number }>`SELECT pg_is_in_recovery() AS replica, inet_server_port() AS port`,
    ([row]) => `${row!.replica ? "replica" : "primary"} :${row!.port}`
  ))

/** Ran on: what, where. */
export interface Placement {
  readonly what: string
  readonly where: string
}

class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  account: Schema.String,
  balance: Schema.Number,
  amount: Schema.Number
}) {}

const balanceIn = (events: ReadonlyArray<EventLog.Event>, account: string) =>
  events.reduce((sum, event) => {
    const payload = event.payload as { account: string; amount: number }
    if (payload.account !== account) return sum
    return event.typeName === "Deposited" ? sum + payload.amount : sum - payload.amount
  }, 0)

// -----------------------------------------------------------------------------
// The service
// -----------------------------------------------------------------------------

const makeBank = (placements: Ref.Ref<ReadonlyArray<Placement>>) => {
  const record = (what: string, where: string) => Ref.update(placements, (all) => [...all, { what, where }])

  /**
   * Decides on a replica: the balance as of the version read. The decision
   * reads the whole (small) log; a real service would read its projection.
   */
  const decide = (typeName: "Deposited" | "Withdrawn", account: string, amount: number) =>
    Effect.gen(function*() {
      const [version, balance, where] = yield* EventLog.readOnly((reader) =>
        Effect.gen(function*() {
          const version = yield* reader.systemVersion
          const events = yield* reader.events({ atVersion: 1, limit: 10_000 })
          return [version, balanceIn(events, account), yield* here] as const
        })
      )
      yield* record(`decide ${typeName} ${account} ${amount} at version ${version}`, where)
      if (typeName === "Withdrawn" && balance < amount) {
        return yield* new InsufficientFunds({ account, balance, amount })
      }
      return { version, event: { typeName, payload: { account, amount } } }
    })

  /** Appends on the primary, assuming the log is where the decision saw it. */
  const append = (decided: { readonly version: number; readonly event: EventLog.NewEvent }) =>
    Effect.gen(function*() {
      const [appended, at] = yield* EventLog.readWrite((tx) =>
        Effect.all([tx.appendEvent(decided.version, decided.event), here])
      )
      yield* record(`append ${decided.event.typeName} as version ${appended}`, at)
      return appended
    }).pipe(
      Effect.tapError((error) =>
        error._tag === "VersionMismatch" ? record(`conflict: ${error.message}`, "primary") : Effect.void
      )
    )

  /**
   * A command: decide, append; when the log moved, decide again on what it is
   * now (a replica may need a moment to replay the winner's append).
   */
  const command = (typeName: "Deposited" | "Withdrawn", account: string, amount: number) =>
    Effect.flatMap(decide(typeName, account, amount), append).pipe(
      Effect.retry({
        while: (error) => error._tag === "VersionMismatch",
        schedule: Schedule.spaced("20 millis"),
        times: 50
      })
    )

  /** Applies the events after the projection's version, reading them on a replica. */
  const catchUp = (target: number) =>
    Effect.gen(function*() {
      for (;;) {
        const current = yield* EventLog.readOnly((reader) => reader.projectionVersion(PROJECTION))
        if (current >= target) return current
        const [events, where] = yield* EventLog.readOnly((reader) =>
          Effect.all([reader.events({ atVersion: current + 1, limit: target - current }), here])
        )
        if (events.length === 0) {
          // The replica has not replayed the append the listener reported yet.
          yield* Effect.sleep("10 millis")
          continue
        }
        yield* record(`projection read versions ${current + 1}..${current + events.length}`, where)
        const last = events[events.length - 1]!.version
        yield* EventLog.readWrite((tx) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            for (const event of events) {
              const { account, amount } = event.payload as { account: string; amount: number }
              const delta = event.typeName === "Deposited" ? amount : -amount
              yield* sql`INSERT INTO bank_balances (account, balance) VALUES (${account}, ${delta})
                ON CONFLICT (account) DO UPDATE SET balance = bank_balances.balance + ${delta}`
            }
            // In the same transaction as the balances: applied exactly once.
            yield* tx.setProjectionVersion(PROJECTION, last)
            yield* record(`projection stored balances and version ${last}`, yield* here)
          })
        )
      }
    })

  return { decide, append, command, catchUp }
}

/** What the run observed. */
export interface Summary {
  readonly placements: ReadonlyArray<Placement>
  readonly balances: Readonly<Record<string, number>>
  readonly systemVersion: number
  readonly projectionVersion: number
  readonly conflicts: number
  readonly rejected: ReadonlyArray<string>
}

/** The program: commands, a projection that follows the listener, then the balances. */
export const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* SqlRouter.withWrite(sql`CREATE TABLE IF NOT EXISTS bank_balances (account text PRIMARY KEY, balance int NOT NULL)`)
  const start = yield* EventLog.readWrite((tx) => tx.initProjectionVersion(PROJECTION))
  // The setup changed the schema: reads stay on the primary until a replica
  // has replayed it (the DDL barrier). The first decision should be a replica's.
  yield* awaitReplicaReads
  const placements = yield* Ref.make<ReadonlyArray<Placement>>([])
  const bank = makeBank(placements)

  // The projection follows the log from where it stopped.
  const ready = yield* Latch.make(false)
  const projection = yield* Effect.forkChild(
    EventLog.listen({ from: start, resubscribeDelay: "200 millis" }).pipe(
      Stream.runForEach((signal) => signal._tag === "Ready" ? Effect.asVoid(ready.open) : Effect.asVoid(bank.catchUp(signal.version)))
    )
  )
  yield* ready.await

  // The commands run in one causal session: each decision reads on a replica
  // that has replayed the session's appends (waiting a little for one).
  const rejected = yield* Consistency.session(Effect.gen(function*() {
    yield* bank.command("Deposited", "ada", 100)
    yield* bank.command("Deposited", "bob", 50)
    // A decision overtaken by another command: its append fails with
    // VersionMismatch, and the command decides again.
    const overtaken = yield* bank.decide("Withdrawn", "ada", 30)
    yield* bank.command("Deposited", "bob", 25)
    yield* bank.append(overtaken).pipe(
      Effect.catchTag("VersionMismatch", () => bank.command("Withdrawn", "ada", 30))
    )
    return yield* bank.command("Withdrawn", "bob", 1_000).pipe(
      Effect.as(Option.none<string>()),
      Effect.catchTag("InsufficientFunds", (error) =>
        Effect.succeed(Option.some(`${error.account}: balance ${error.balance}, asked ${error.amount}`)))
    )
  })).pipe(Consistency.withReadPolicy({ maxWait: "5 seconds", onNotCaughtUp: "primary" }))

  // Wait until the projection has applied everything, then read it on a replica.
  const systemVersion = yield* EventLog.readOnly((reader) => reader.systemVersion).pipe(SqlRouter.primary)
  const projectionVersion = yield* awaitProjection(systemVersion)
  yield* Fiber.interrupt(projection)
  const rows = yield* SqlRouter.withPrimary(
    sql<{ account: string; balance: number }>`SELECT account, balance FROM bank_balances ORDER BY account`
  )
  const all = yield* Ref.get(placements)
  return {
    placements: all,
    balances: Object.fromEntries(rows.map((row) => [row.account, row.balance])),
    systemVersion,
    projectionVersion,
    conflicts: all.filter((p) => p.what.startsWith("conflict")).length,
    rejected: Option.toArray(rejected)
  } satisfies Summary
})

/**
 * Once a replica serves reads again after the setup's schema changes (each
 * attempt lowers the DDL barrier when the replicas have replayed it), or
 * after 10 seconds; at once without replicas.
 */
const awaitReplicaReads = Effect.flatMap(SqlRouter.hasReplicas, (hasReplicas) =>
  hasReplicas
    ? SqlRouter.withReplica(Effect.void).pipe(
      Effect.retry({ while: (error) => error._tag === "NoReplicaAvailable", schedule: Schedule.spaced("20 millis") }),
      Effect.timeout("10 seconds"),
      Effect.ignore
    )
    : Effect.void)

/** The projection's version once it has reached `target` (read on the primary: no replica lag in the way). */
const awaitProjection = (target: number) =>
  EventLog.readOnly((reader) => reader.projectionVersion(PROJECTION)).pipe(
    SqlRouter.primary,
    Effect.filterOrFail((version) => version >= target, () => "behind" as const),
    Effect.retry({ while: (behind) => behind === "behind", schedule: Schedule.spaced("20 millis") }),
    Effect.timeout("30 seconds")
  )

// -----------------------------------------------------------------------------
// Wiring
// -----------------------------------------------------------------------------

const RouterLive = Layer.unwrap(Effect.gen(function*() {
  const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
  if (Option.isSome(url)) return SqlRouter.layerClientConfig(RouterConfig.fromEnv)
  const cluster = yield* PgCluster.make({ replicas: 2 })
  return SqlRouter.layerClient({ primary: cluster.primary.url, replicas: cluster.replicas.map((node) => node.url) })
}))

/** The router with its routed client, and the event log on it (its tables created at start). */
export const EventLogLive = EventLog.layer({ table: "bank_log", payloads, revisionVcs: "example" }).pipe(
  Layer.provideMerge(RouterLive)
)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Effect.runPromise(Effect.provide(program, EventLogLive)).then(
    (summary) => {
      for (const { what, where } of summary.placements) console.log(`${where.padEnd(14)} ${what}`)
      console.log(`rejected: ${summary.rejected.join("; ") || "none"}; conflicts decided again: ${summary.conflicts}`)
      console.log(`log at version ${summary.systemVersion}, projection at ${summary.projectionVersion}`)
      for (const [account, balance] of Object.entries(summary.balances)) console.log(`  ${account}: ${balance}`)
    },
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}

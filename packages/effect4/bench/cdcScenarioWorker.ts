/**
 * A worker of the CDC acceptance scenario (`bench/cdcScenario.ts`): one rule
 * (`CDC_RULE`, JSON) from `CDC_SOURCE_URL` into the PostgreSQL database at
 * `CDC_TARGET_URL` or the SQLite file at `CDC_SQLITE_PATH` (`CDC_TARGET`),
 * a stats line on stdout every 250 ms, until killed. The scenario bundles it
 * and runs it with plain Node on the built package, so that its RSS is the
 * library's and not a TypeScript loader's.
 */
import * as Reactivity from "effect/reactivity/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteTarget from "../test/fixtures/sqlite.js"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Cdc from "@effect-sql-router/effect4/Cdc"

const env = (name: string) => process.env[name]!

Effect.runFork(
  Effect.gen(function*() {
    const rule = JSON.parse(env("CDC_RULE")) as Cdc.Rule
    const target = env("CDC_TARGET") === "pg"
      ? yield* PgClient.make({ url: Redacted.make(env("CDC_TARGET_URL")) })
      : yield* SqliteTarget.make(env("CDC_SQLITE_PATH"))
    const cdc = yield* Cdc.make({
      primary: Redacted.make(env("CDC_SOURCE_URL")),
      targets: { [rule.target]: Cdc.sqlTarget(target) },
      rules: [rule],
      retryDelay: "100 millis",
      maxRetryDelay: "1 second"
    })
    yield* cdc.run(rule.name)
    process.stderr.write(`${rule.name}: running\n`)
    yield* cdc.stats(rule.name).pipe(
      Effect.tap((stats) =>
        Effect.sync(() => {
          const snapshot = stats.snapshot
          process.stdout.write(`${
            JSON.stringify({
              rule: stats.rule,
              running: stats.running,
              snapshot: snapshot && { running: snapshot.running, rowsCopied: snapshot.rowsCopied, table: snapshot.table },
              lastAppliedLsn: stats.lastAppliedLsn,
              errors: stats.errors,
              lastError: stats.lastError
            })
          }\n`)
        })
      ),
      Effect.repeat(Schedule.spaced("250 millis"))
    )
    return yield* Effect.never
  }).pipe(
    Effect.provide(Reactivity.layer),
    Effect.scoped,
    Effect.catchCause((cause) => Effect.sync(() => {
      process.stderr.write(`worker failed: ${Cause.pretty(cause)}\n`)
      process.exit(1)
    }))
  )
)

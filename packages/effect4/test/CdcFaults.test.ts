import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import Pg from "pg"
import * as Cdc from "@effect-sql-router/effect4/Cdc"
import { PgCluster } from "@effect-sql-router/effect4/testing"

// Each fault of issue 15 under a randomized workload (inserts, updates,
// key changes, deletes and a truncate over three tables, at least 10 000
// committed row changes), ending with the target equal to the source row by row. The target is a
// second embedded PostgreSQL server.

const schema = [
  "CREATE TABLE cdc_a (id int PRIMARY KEY, v int NOT NULL, note text)",
  "CREATE TABLE cdc_b (id int8 PRIMARY KEY, amount numeric(12,2), meta jsonb)",
  "CREATE TABLE cdc_c (id text PRIMARY KEY, at timestamptz, data bytea, tags text[])"
]
const tables = ["cdc_a", "cdc_b", "cdc_c"] as const
// Statements; some touch no row (an update of a deleted key): the scenarios
// check that at least 10 000 row changes were committed.
const total = 14_000
const half = total / 2

/** A small seeded generator: the same workload every run. */
const makeRandom = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const statement = (random: () => number, index: number): string => {
  if (index === 2_500) return "TRUNCATE cdc_c"
  const table = tables[Math.floor(random() * 3)]!
  const roll = random()
  const k = 1 + Math.floor(random() * 300)
  const n = Math.floor(random() * 1_000_000)
  switch (table) {
    case "cdc_a":
      if (roll < 0.45) {
        return `INSERT INTO cdc_a VALUES (${k}, ${n}, 'n${n}') ON CONFLICT (id) DO UPDATE SET v = excluded.v, note = excluded.note`
      }
      if (roll < 0.65) return `UPDATE cdc_a SET v = v + 1 WHERE id = ${k}`
      if (roll < 0.8) {
        const to = 1 + Math.floor(random() * 300)
        return `UPDATE cdc_a SET id = ${to} WHERE id = ${k} AND NOT EXISTS (SELECT 1 FROM cdc_a WHERE id = ${to})`
      }
      return `DELETE FROM cdc_a WHERE id = ${k}`
    case "cdc_b": {
      const id = `${k}000000000000`
      if (roll < 0.45) {
        return `INSERT INTO cdc_b VALUES (${id}, ${n % 100000}.${n % 100}, '{"n": ${n}, "tags": ["x", ${n}]}') ON CONFLICT (id) DO UPDATE SET amount = excluded.amount, meta = excluded.meta`
      }
      if (roll < 0.8) return `UPDATE cdc_b SET amount = amount + 1.25, meta = jsonb_set(meta, '{n}', to_jsonb(${n})) WHERE id = ${id}`
      return `DELETE FROM cdc_b WHERE id = ${id}`
    }
    case "cdc_c":
      if (roll < 0.45) {
        return `INSERT INTO cdc_c VALUES ('k${k}', now(), '\\x${n.toString(16).padStart(6, "0")}', ARRAY['a', 'b${n}', NULL]) ON CONFLICT (id) DO UPDATE SET at = excluded.at, data = excluded.data, tags = excluded.tags`
      }
      if (roll < 0.8) return `UPDATE cdc_c SET at = at + interval '1 second', tags = tags || 'u'::text WHERE id = 'k${k}'`
      return `DELETE FROM cdc_c WHERE id = 'k${k}'`
  }
}

/**
 * Runs statements `from` to `to` in transactions of 1 to 20 statements on
 * the cluster's current primary. A transaction that fails (the primary went
 * away) is dropped and the next one goes to whichever server is primary by
 * then: the comparison is with what the source committed.
 */
const workload = (s: Pick<Scenario, "source" | "random" | "committed">, from: number, to: number) =>
  Effect.promise(async () => {
    const cluster = s.source
    const random = s.random
    let client: Pg.Client | undefined
    let index = from
    while (index < to) {
      const size = Math.min(to - index, 1 + Math.floor(random() * 20))
      const statements = Array.from({ length: size }, (_, i) => statement(random, index + i))
      index += size
      try {
        if (!client) {
          client = new Pg.Client({ connectionString: Redacted.value(cluster.primary.url), connectionTimeoutMillis: 2_000 })
          client.on("error", () => {})
          await client.connect()
        }
        const results = (await client.query(`BEGIN; ${statements.join("; ")}; COMMIT`)) as unknown as Array<Pg.QueryResult>
        s.committed.rows += results.reduce((n, r) => n + (r.command === "TRUNCATE" ? 1 : r.command === "BEGIN" || r.command === "COMMIT" ? 0 : r.rowCount ?? 0), 0)
      } catch {
        void client?.end().catch(() => {})
        client = undefined
        // Wait for the server to come back (or the cluster to change primary).
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    await client?.end().catch(() => {})
  })

/** The fiber ended by interruption alone (no failure, no defect). */
const interruptedOnly = <A, E>(exit: Exit.Exit<A, E>): boolean => Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)

const contents = (cluster: PgCluster.PgCluster) =>
  Effect.forEach(tables, (table) =>
    Effect.map(
      cluster.query<{ rows: string }>(
        cluster.primary,
        `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]')::text AS rows FROM ${table} t`
      ),
      (rows) => rows[0]!.rows
    ))

/** Waits until the target holds exactly the source's rows; returns both sides. */
const awaitConverged = (
  source: PgCluster.PgCluster,
  target: PgCluster.PgCluster
): Effect.Effect<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> =>
  Effect.all([contents(source), contents(target)]).pipe(
    Effect.orElseSucceed((): readonly [ReadonlyArray<string>, ReadonlyArray<string>] => [[], ["unreachable"]]),
    Effect.filterOrFail(([a, b]) => a.join("\n") === b.join("\n"), (last) => last),
    Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.upTo({ duration: "90 seconds" }))),
    Effect.catch((last) => Effect.succeed(last))
  )

interface Scenario {
  readonly source: PgCluster.PgCluster
  readonly target: PgCluster.PgCluster
  readonly cdc: Cdc.Cdc
  readonly random: () => number
  /** Row changes the source committed (a truncate counts as one). */
  readonly committed: { rows: number }
}

const setup = (options: { readonly replicas: number; readonly failover?: boolean }) =>
  Effect.gen(function*() {
    const source = yield* PgCluster.make({ replicas: options.replicas, walLevel: "logical" })
    const target = yield* PgCluster.make({ replicas: 0 })
    for (const sql of schema) yield* source.query(source.primary, sql)
    const random = makeRandom(15)
    const committed = { rows: 0 }
    // A few rows before the rule exists: they come with the snapshot.
    yield* workload({ source, random, committed }, 0, 200)
    const client = yield* PgClient.make({ url: target.primary.url })
    const cdc = yield* Cdc.make({
      primary: Effect.sync(() => source.primary.url),
      targets: { target: Cdc.sqlTarget(client) },
      retryDelay: "50 millis",
      maxRetryDelay: "500 millis"
    })
    yield* cdc.addRule({ name: "mirror", tables: [...tables], target: "target", failover: options.failover ?? false })
    return { source, target, cdc, random, committed } satisfies Scenario
  })

const scenario = <A, E>(
  options: { readonly replicas: number; readonly failover?: boolean },
  body: (scenario: Scenario) => Effect.Effect<A, E, Scope.Scope>
) => Effect.flatMap(setup(options), body).pipe(Effect.provide(Reactivity.layer), Effect.scoped)

/**
 * A lock on one target table stops the marker transaction half-applied (its
 * cdc_b row written, its cdc_a row waiting). Its keys are outside the
 * workload's, so nothing later can mask a loss. Returns the lock's holder.
 */
const halfApplyMarker = (s: Scenario) =>
  Effect.gen(function*() {
    const locker = new Pg.Client({ connectionString: Redacted.value(s.target.primary.url) })
    yield* Effect.promise(() => locker.connect())
    yield* Effect.promise(() => locker.query("BEGIN; LOCK TABLE cdc_a IN ACCESS EXCLUSIVE MODE"))
    // One source transaction (the harness runs one statement per call).
    yield* Effect.promise(async () => {
      const writer = new Pg.Client({ connectionString: Redacted.value(s.source.primary.url) })
      await writer.connect()
      try {
        await writer.query(
          "BEGIN; INSERT INTO cdc_b VALUES (999999, 1.50, '{\"marker\": true}'); INSERT INTO cdc_a VALUES (100000, 1, 'marker'); COMMIT"
        )
      } finally {
        await writer.end()
      }
    })
    yield* s.target.query(
      s.target.primary,
      "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%cdc_a%'"
    ).pipe(
      Effect.flatMap((rows) => rows.length > 0 ? Effect.void : Effect.fail("not blocked yet")),
      Effect.retry(Schedule.spaced("20 millis")),
      Effect.timeout("30 seconds")
    )
    return locker
  })

/** How many of the marker transaction's two rows the target has. */
const markerRows = "SELECT ((SELECT count(*) FROM cdc_a WHERE id = 100000) + (SELECT count(*) FROM cdc_b WHERE id = 999999))::int AS n"

/**
 * After the half-applied marker transaction was rolled back: none of it is on
 * the target; the rest of the workload runs, the rule runs again, and the
 * target converges with the marker transaction applied once, in full.
 */
const rerunAfterRollback = (s: Scenario) =>
  Effect.gen(function*() {
    expect(yield* s.target.query(s.target.primary, markerRows)).toEqual([{ n: 0 }])
    yield* workload(s, half, total)
    yield* s.cdc.run("mirror")
    yield* expectConverged(s)
    expect(yield* s.target.query(s.target.primary, markerRows)).toEqual([{ n: 2 }])
  })

const expectConverged = (s: Scenario, minimumChanges = 10_000) =>
  Effect.gen(function*() {
    const [source, target] = yield* awaitConverged(s.source, s.target)
    expect(target).toEqual(source)
    // The workload left rows in every table (the comparison is not vacuous).
    for (const rows of source) expect(JSON.parse(rows).length).toBeGreaterThan(10)
    expect(s.committed.rows).toBeGreaterThanOrEqual(minimumChanges)
  })

describe("Cdc faults", () => {
  it.live("the target down for a while: retries with backoff, nothing lost", () =>
    scenario({ replicas: 0 }, (s) =>
      Effect.gen(function*() {
        yield* s.cdc.run("mirror")
        yield* workload(s, 200, half)
        yield* s.target.stop(s.target.primary)
        yield* workload(s, half, total)
        // Fails while the target is down: retries are counted.
        yield* Effect.flatMap(s.cdc.stats("mirror"), (st) => st.retries > 0 ? Effect.void : Effect.fail("no retry yet")).pipe(
          Effect.retry(Schedule.spaced("50 millis")),
          Effect.timeout("30 seconds")
        )
        yield* s.target.start(s.target.primary)
        yield* expectConverged(s)
        const stats = yield* s.cdc.stats("mirror")
        expect(stats.running).toBe(true)
        expect(stats.lastError).toMatch(/target/)
      })), { timeout: 240_000 })

  it.live("the primary restarted: the stream resumes from the slot", () =>
    scenario({ replicas: 0 }, (s) =>
      Effect.gen(function*() {
        yield* s.cdc.run("mirror")
        yield* workload(s, 200, half)
        yield* s.source.stop(s.source.primary)
        yield* s.source.start(s.source.primary)
        yield* workload(s, half, total)
        yield* expectConverged(s)
        expect((yield* s.cdc.stats("mirror")).restarts).toBeGreaterThan(0)
      })), { timeout: 240_000 })

  it.live("the CDC stream killed inside a target transaction: the restart re-delivers from the confirmed position", () =>
    scenario({ replicas: 0 }, (s) =>
      Effect.gen(function*() {
        const fiber = yield* s.cdc.run("mirror")
        yield* workload(s, 200, half)
        yield* expectConverged(s, 0)
        // The stream is killed with the marker transaction half-applied.
        const locker = yield* halfApplyMarker(s)
        const applied = (yield* s.cdc.stats("mirror")).transactionsApplied
        // The interruption's rollback waits behind the blocked statement: release the lock after it started.
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(fiber), { startImmediately: true })
        yield* Effect.promise(() => locker.query("COMMIT").then(() => locker.end()))
        yield* Fiber.join(interrupting)
        expect(interruptedOnly(yield* Fiber.await(fiber))).toBe(true)
        expect((yield* s.cdc.stats("mirror")).transactionsApplied).toBe(applied)
        yield* rerunAfterRollback(s)
      })), { timeout: 240_000 })

  it.live("the CDC process SIGKILLed inside a target transaction: a new process re-delivers from the confirmed position", () =>
    scenario({ replicas: 0 }, (s) =>
      Effect.gen(function*() {
        const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "test/fixtures/cdcWorker.ts"], {
          stdio: ["ignore", "pipe", "inherit"],
          env: {
            ...process.env,
            CDC_SOURCE_URL: Redacted.value(s.source.primary.url),
            CDC_TARGET_URL: Redacted.value(s.target.primary.url)
          }
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
        const exited = Effect.callback<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
        })
        yield* Effect.callback<void>((resume) => void child.stdout.once("data", () => resume(Effect.void)))
        yield* workload(s, 200, half)
        yield* expectConverged(s, 0)
        const locker = yield* halfApplyMarker(s)
        child.kill("SIGKILL")
        yield* exited
        yield* Effect.promise(() => locker.query("COMMIT").then(() => locker.end()))
        // The server rolled the dead process's half-applied transaction back.
        yield* rerunAfterRollback(s)
      })), { timeout: 240_000 })

  it.live("a failover with a failover slot: the stream resumes on the promoted replica", () =>
    scenario({ replicas: 1, failover: true }, (s) =>
      Effect.gen(function*() {
        const primary = s.source.primary
        const standby = s.source.replicas[0]!
        // What slot synchronisation needs (PostgreSQL 17+): a physical slot for
        // the standby, logical walsenders that wait for it, and a standby that
        // syncs failover slots over a primary_conninfo naming a database.
        yield* s.source.query(primary, "SELECT pg_create_physical_replication_slot('standby_0')")
        yield* s.source.query(primary, "ALTER SYSTEM SET synchronized_standby_slots = 'standby_0'")
        yield* s.source.query(primary, "SELECT pg_reload_conf()")
        yield* s.source.query(
          standby,
          `ALTER SYSTEM SET primary_conninfo = 'host=${primary.host} port=${primary.port} user=${primary.user} dbname=postgres application_name=${standby.name}'`
        )
        yield* s.source.query(standby, "ALTER SYSTEM SET primary_slot_name = 'standby_0'")
        yield* s.source.query(standby, "ALTER SYSTEM SET sync_replication_slots = on")
        yield* s.source.query(standby, "SELECT pg_reload_conf()")
        yield* s.cdc.run("mirror")
        yield* workload(s, 200, half)
        // The standby holds a persisted copy of the slot.
        yield* s.source.query<{ ok: boolean }>(
          standby,
          "SELECT synced AND NOT temporary AS ok FROM pg_replication_slots WHERE slot_name = 'cdc_mirror'"
        ).pipe(
          Effect.flatMap((rows) => rows[0]?.ok ? Effect.void : Effect.fail("not synced yet")),
          Effect.retry(Schedule.spaced("50 millis")),
          Effect.timeout("60 seconds")
        )
        yield* s.source.kill(primary)
        yield* s.source.promote(standby)
        yield* workload(s, half, total)
        expect(s.source.primary.name).toBe(standby.name)
        yield* expectConverged(s)
        expect((yield* s.cdc.stats("mirror")).restarts).toBeGreaterThan(0)
        // The stream resumed on the standby's synced copy of the slot, not on
        // a new slot with a fresh snapshot (that would converge too).
        const slots = yield* s.source.query(standby, "SELECT synced FROM pg_replication_slots WHERE slot_name = 'cdc_mirror'")
        expect(slots).toEqual([{ synced: true }])
      })), { timeout: 240_000 })
})

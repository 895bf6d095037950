/**
 * Drop-in parity: the flows of the upstream drizzle, kysely and sql-pg suites
 * (create a table and use it at once, insert … returning, select where,
 * update, delete, transactions, add a column and select it) on the routed
 * client, without a causal session, ten times each.
 *
 * The race is made certain: replay is paused on every replica around each
 * schema change and the statements right after it, so a read that reached a
 * replica would meet `42P01 relation does not exist` or `42703 column does
 * not exist` there. The DDL barrier keeps those reads off the replicas (the
 * test checks that no replica served one, so the safety net's rerun on the
 * primary does not hide a misrouted read). Between schema changes the
 * replicas replay, and the ORMs' reads are served by a replica again.
 */
import { expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { eq, sql as dsql } from "drizzle-orm"
import * as D from "drizzle-orm/pg-core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import { type Generated, sql as ksql } from "kysely"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { makeDrizzle, makeKysely } from "./fixtures/orm.js"
import { configFor } from "./utils.js"

const Routed = Layer.unwrap(
  Effect.map(Effect.service(PgCluster.PgCluster), (cluster) => RoutedClient.layer(configFor(cluster)))
).pipe(Layer.provideMerge(PgCluster.layer({ replicas: 2 })))

const runs = 10

const replicaReads = Effect.map(SqlRouter.stats, (s) => s.replicas.reduce((n, r) => n + r.served.reads, 0))

/**
 * Runs `body` with replay paused on every replica (they stay before anything
 * `body` does), checks that no replica served a read meanwhile and that the
 * replicas still lack what `body` created (`missing`: one boolean row), and
 * resumes replay and waits for it whatever happens.
 */
const whileReplicasLag = <A, E, R>(body: Effect.Effect<A, E, R>, missing: string) =>
  Effect.flatMap(Effect.service(PgCluster.PgCluster), (cluster) =>
    Effect.acquireUseRelease(
      Effect.forEach(cluster.replicas, cluster.pauseReplay, { concurrency: "unbounded" }),
      () =>
        Effect.gen(function*() {
          const before = yield* replicaReads
          const result = yield* body
          expect(yield* replicaReads, "reads served by a replica that had not replayed the schema change").toBe(before)
          // The race was real: a read sent to a replica would have failed there.
          const onReplicas = yield* Effect.forEach(cluster.replicas, (r) => cluster.query(r, missing), { concurrency: "unbounded" })
          expect(onReplicas).toEqual(cluster.replicas.map(() => [{ missing: true }]))
          return result
        }),
      () =>
        Effect.orDie(Effect.andThen(
          Effect.forEach(cluster.replicas, cluster.resumeReplay, { concurrency: "unbounded" }),
          cluster.awaitReplication()
        ))
    ))

/** The table's names in id order, and the server that answered. */
interface Seen {
  readonly names: ReadonlyArray<string>
  readonly node: string
}

/** Repeats `read` until a replica answers it (the barrier is down once they replayed), bounded. */
const untilReplicaServes = <E, R>(read: Effect.Effect<Seen, E, R>) =>
  Effect.gen(function*() {
    for (;;) {
      const seen = yield* read
      if (seen.node !== "primary") return seen
      yield* Effect.sleep("10 millis")
    }
  }).pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.fail(new Error("no replica served a read")) }))

/** One upstream suite's flows, by phase; each phase asserts what it reads. */
interface Flow<R> {
  /** Creates the table, then at once: select (empty), insert … returning, select where, update, delete. */
  readonly create: (table: string) => Effect.Effect<void, unknown, R>
  /** Selects the names, and the server's name, through the ORM. */
  readonly read: (table: string) => Effect.Effect<Seen, unknown, R>
  /** A committed transaction that reads its own insert, and one rolled back. */
  readonly transaction: (table: string) => Effect.Effect<void, unknown, R>
  /** Adds a column, then at once selects and updates it. */
  readonly alter: (table: string) => Effect.Effect<void, unknown, R>
}

/** The flows `runs` times, each on a fresh table; every run must pass. */
const everyRun = <R>(prefix: string, flow: Flow<R>) =>
  Effect.gen(function*() {
    let passed = 0
    for (let i = 0; i < runs; i++) {
      const table = `${prefix}_${i}`
      yield* whileReplicasLag(flow.create(table), `SELECT to_regclass('${table}') IS NULL AS missing`)
      // Replayed: the barrier comes down and the ORM's reads return to the replicas.
      const seen = yield* untilReplicaServes(flow.read(table))
      expect(seen.names).toEqual(["Carol"])
      expect(seen.node).toMatch(/^replica-/)
      yield* flow.transaction(table)
      yield* whileReplicasLag(
        flow.alter(table),
        `SELECT NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = '${table}' AND column_name = 'email') AS missing`
      )
      passed++
    }
    expect(passed).toBe(runs)
    const last = yield* untilReplicaServes(flow.read(`${prefix}_${runs - 1}`))
    expect(last.names).toEqual(["Carol", "Dave"])
  })

// -----------------------------------------------------------------------------
// drizzle (pg-proxy over the routed SqlClient)
// -----------------------------------------------------------------------------

const users = (table: string) => D.pgTable(table, { id: D.serial("id").primaryKey(), name: D.text("name").notNull() })
const usersWithEmail = (table: string) =>
  D.pgTable(table, { id: D.serial("id").primaryKey(), name: D.text("name").notNull(), email: D.text("email") })
const drizzleNode = dsql<string>`current_setting('cluster_name')`

const drizzleFlow = Effect.map(Effect.context<SqlClient.SqlClient>(), (services): Flow<never> => {
  const db = makeDrizzle(services)
  return {
    create: (table) =>
      Effect.promise(async () => {
        const t = users(table)
        await db.execute(dsql`CREATE TABLE ${t} (id serial PRIMARY KEY, name text NOT NULL)`)
        expect(await db.select().from(t)).toEqual([])
        expect(await db.insert(t).values({ name: "Alice" }).returning()).toEqual([{ id: 1, name: "Alice" }])
        expect(await db.select().from(t).where(eq(t.name, "Alice"))).toEqual([{ id: 1, name: "Alice" }])
        await db.update(t).set({ name: "Bob" }).where(eq(t.id, 1))
        expect(await db.select({ name: t.name }).from(t).where(eq(t.id, 1))).toEqual([{ name: "Bob" }])
        await db.insert(t).values({ name: "Carol" })
        expect(await db.delete(t).where(eq(t.name, "Bob")).returning({ id: t.id })).toEqual([{ id: 1 }])
        expect(await db.select({ name: t.name }).from(t)).toEqual([{ name: "Carol" }])
      }),
    read: (table) =>
      Effect.promise(async () => {
        const t = users(table)
        const rows = await db.select({ name: t.name, node: drizzleNode }).from(t).orderBy(t.id)
        return { names: rows.map((r) => r.name), node: rows[0]!.node }
      }),
    transaction: (table) =>
      Effect.promise(async () => {
        const t = users(table)
        // Inside, every statement is on the transaction's primary connection: it sees its own insert.
        const inside = await db.transaction(async (tx) => {
          await tx.insert(t).values({ name: "Dave" })
          return tx.select({ name: t.name, node: drizzleNode }).from(t).where(eq(t.name, "Dave"))
        })
        expect(inside).toEqual([{ name: "Dave", node: "primary" }])
        await expect(db.transaction(async (tx) => {
          await tx.insert(t).values({ name: "Eve" })
          throw new Error("rolled back")
        })).rejects.toThrow("rolled back")
      }),
    alter: (table) =>
      Effect.promise(async () => {
        const t = usersWithEmail(table)
        await db.execute(dsql`ALTER TABLE ${t} ADD COLUMN email text`)
        expect(await db.select({ name: t.name, email: t.email }).from(t).orderBy(t.id)).toEqual([
          { name: "Carol", email: null },
          { name: "Dave", email: null }
        ])
        await db.update(t).set({ email: "dave@example.com" }).where(eq(t.name, "Dave"))
        expect(await db.select({ email: t.email }).from(t).where(eq(t.name, "Dave"))).toEqual([{ email: "dave@example.com" }])
      })
  }
})

// -----------------------------------------------------------------------------
// kysely (a dialect whose driver runs on the routed SqlClient)
// -----------------------------------------------------------------------------

interface UsersTable {
  readonly id: Generated<number>
  readonly name: string
  readonly email: string | null
}
type Database = Record<string, UsersTable>
const kyselyNode = ksql<string>`current_setting('cluster_name')`.as("node")

const kyselyFlow = Effect.map(Effect.context<SqlClient.SqlClient>(), (services): Flow<never> => {
  const db = makeKysely<Database>(services)
  return {
    create: (table) =>
      Effect.promise(async () => {
        await db.schema.createTable(table)
          .addColumn("id", "serial", (c) => c.primaryKey())
          .addColumn("name", "text", (c) => c.notNull())
          .execute()
        expect(await db.selectFrom(table).selectAll().execute()).toEqual([])
        expect(await db.insertInto(table).values({ name: "Alice" }).returning(["id", "name"]).execute()).toEqual([
          { id: 1, name: "Alice" }
        ])
        expect(await db.selectFrom(table).select(["id", "name"]).where("name", "=", "Alice").execute()).toEqual([
          { id: 1, name: "Alice" }
        ])
        const [updated] = await db.updateTable(table).set({ name: "Bob" }).where("id", "=", 1).execute()
        expect(updated!.numUpdatedRows).toBe(1n)
        expect(await db.selectFrom(table).select("name").where("id", "=", 1).execute()).toEqual([{ name: "Bob" }])
        await db.insertInto(table).values({ name: "Carol" }).execute()
        const [deleted] = await db.deleteFrom(table).where("name", "=", "Bob").execute()
        expect(deleted!.numDeletedRows).toBe(1n)
        expect(await db.selectFrom(table).select("name").execute()).toEqual([{ name: "Carol" }])
      }),
    read: (table) =>
      Effect.promise(async () => {
        const rows = await db.selectFrom(table).select(["name", kyselyNode]).orderBy("id").execute()
        return { names: rows.map((r) => r.name), node: rows[0]!.node }
      }),
    transaction: (table) =>
      Effect.promise(async () => {
        const inside = await db.transaction().execute(async (trx) => {
          await trx.insertInto(table).values({ name: "Dave" }).execute()
          return trx.selectFrom(table).select(["name", kyselyNode]).where("name", "=", "Dave").execute()
        })
        expect(inside).toEqual([{ name: "Dave", node: "primary" }])
        await expect(db.transaction().execute(async (trx) => {
          await trx.insertInto(table).values({ name: "Eve" }).execute()
          throw new Error("rolled back")
        })).rejects.toThrow("rolled back")
      }),
    alter: (table) =>
      Effect.promise(async () => {
        await db.schema.alterTable(table).addColumn("email", "text").execute()
        expect(await db.selectFrom(table).select(["name", "email"]).orderBy("id").execute()).toEqual([
          { name: "Carol", email: null },
          { name: "Dave", email: null }
        ])
        await db.updateTable(table).set({ email: "dave@example.com" }).where("name", "=", "Dave").execute()
        expect(await db.selectFrom(table).select("email").where("name", "=", "Dave").execute()).toEqual([
          { email: "dave@example.com" }
        ])
      })
  }
})

// -----------------------------------------------------------------------------
// the sql-pg Client suite's style, on the routed client itself
// -----------------------------------------------------------------------------

const pgFlow = Effect.map(PgClient.PgClient, (sql): Flow<never> => ({
  create: (table) =>
    Effect.gen(function*() {
      yield* sql`CREATE TABLE ${sql(table)} (id serial PRIMARY KEY, name text NOT NULL, data jsonb NOT NULL)`
      expect(yield* sql`SELECT * FROM ${sql(table)}`).toEqual([])
      const inserted = yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ name: "Alice", data: sql.json({ tags: ["a"] }) })} RETURNING *`
      expect(inserted).toEqual([{ id: 1, name: "Alice", data: { tags: ["a"] } }])
      expect(yield* sql`SELECT id, name FROM ${sql(table)} WHERE ${sql.in("id", [1, 2])}`).toEqual([{ id: 1, name: "Alice" }])
      yield* sql`UPDATE ${sql(table)} SET ${sql.update({ name: "Bob" })} WHERE id = 1`
      expect(yield* sql`SELECT name, data->'tags' AS tags FROM ${sql(table)} WHERE id = 1`).toEqual([{ name: "Bob", tags: ["a"] }])
      yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ name: "Carol", data: sql.json({ tags: [] }) })}`
      yield* sql`DELETE FROM ${sql(table)} WHERE name = ${"Bob"}`
      expect(yield* sql`SELECT name FROM ${sql(table)}`).toEqual([{ name: "Carol" }])
    }),
  read: (table) =>
    Effect.map(
      sql<{ name: string; node: string }>`SELECT name, current_setting('cluster_name') AS node FROM ${sql(table)} ORDER BY id`,
      (rows) => ({ names: rows.map((r) => r.name), node: rows[0]!.node })
    ),
  transaction: (table) =>
    Effect.gen(function*() {
      const inside = yield* sql.withTransaction(Effect.andThen(
        sql`INSERT INTO ${sql(table)} ${sql.insert({ name: "Dave", data: sql.json({}) })}`,
        sql`SELECT name, current_setting('cluster_name') AS node FROM ${sql(table)} WHERE name = 'Dave'`
      ))
      expect(inside).toEqual([{ name: "Dave", node: "primary" }])
      const rolledBack = yield* Effect.flip(sql.withTransaction(Effect.andThen(
        sql`INSERT INTO ${sql(table)} ${sql.insert({ name: "Eve", data: sql.json({}) })}`,
        Effect.fail("rolled back" as const)
      )))
      expect(rolledBack).toBe("rolled back")
    }),
  alter: (table) =>
    Effect.gen(function*() {
      yield* sql`ALTER TABLE ${sql(table)} ADD COLUMN email text`
      expect(yield* sql`SELECT name, email FROM ${sql(table)} ORDER BY id`).toEqual([
        { name: "Carol", email: null },
        { name: "Dave", email: null }
      ])
      yield* sql`UPDATE ${sql(table)} SET email = ${"dave@example.com"} WHERE name = 'Dave'`
      expect(yield* sql`SELECT email FROM ${sql(table)} WHERE name = 'Dave'`).toEqual([{ email: "dave@example.com" }])
    })
}))

layer(Routed, { timeout: "120 seconds", excludeTestServices: true })("upstream suites on the routed client, no session", (it) => {
  it.effect(`drizzle (pg-proxy): ${runs} of ${runs} runs pass`, () =>
    Effect.flatMap(drizzleFlow, (flow) => everyRun("drizzle_users", flow)))

  it.effect(`kysely (custom dialect): ${runs} of ${runs} runs pass`, () =>
    Effect.flatMap(kyselyFlow, (flow) => everyRun("kysely_users", flow)))

  it.effect(`sql-pg client style: ${runs} of ${runs} runs pass`, () =>
    Effect.flatMap(pgFlow, (flow) => everyRun("pg_users", flow)))
})

// The same flows as the upstream suites run them: on replicas that replay as
// they please, so a replica can have replayed the CREATE but not yet the
// INSERT right after it. While the DDL barrier is up, every write moves it
// to the write's position, so the reads that follow still see their writes.
const liveRun = <R>(prefix: string, flow: Flow<R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < runs; i++) {
      const table = `${prefix}_live_${i}`
      yield* flow.create(table)
      yield* flow.transaction(table)
      yield* flow.alter(table)
    }
  })

layer(Routed, { timeout: "120 seconds", excludeTestServices: true })("upstream suites on live replicas, no session", (it) => {
  it.effect(`drizzle (pg-proxy): ${runs} of ${runs} runs pass`, () =>
    Effect.flatMap(drizzleFlow, (flow) => liveRun("drizzle_users", flow)))

  it.effect(`kysely (custom dialect): ${runs} of ${runs} runs pass`, () =>
    Effect.flatMap(kyselyFlow, (flow) => liveRun("kysely_users", flow)))

  it.effect(`sql-pg client style: ${runs} of ${runs} runs pass`, () =>
    Effect.flatMap(pgFlow, (flow) => liveRun("pg_users", flow)))
})

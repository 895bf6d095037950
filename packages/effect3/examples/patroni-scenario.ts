/**
 * This line's part of `npm run scenario:patroni` (see
 * `scripts/scenario-patroni.mjs`, which starts a real Patroni + etcd cluster
 * and runs this file): a router whose primary and replica health come from
 * Patroni's REST API; it writes and reads, says READY, and once told the
 * leader was killed (`KILLED <port>` on stdin) writes until a write lands on
 * another server, which must be the leader Patroni elected. Progress goes to
 * stdout, one line per step, for the orchestrator to check.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Readline from "node:readline"
import { RoutedClient, SqlRouter } from "effect-sql-router"

interface Input {
  readonly hosts: ReadonlyArray<string>
  readonly patroni: ReadonlyArray<string>
  readonly table: string
}

const input = JSON.parse(process.env["PATRONI_SCENARIO"] ?? "null") as Input
const stdin = Readline.createInterface({ input: process.stdin })
const nextLine = () => new Promise<string>((resolve) => stdin.once("line", resolve))
const say = (text: string) => Effect.sync(() => console.log(text))

const serverPort = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ port: number }>`SELECT inet_server_port() AS port`, (rows) => rows[0]!.port))

const program = Effect.gen(function*() {
  const { client, router } = yield* RoutedClient.make({
    discovery: "auto",
    hosts: input.hosts.map((url) => Redacted.make(url)),
    connectTimeout: "2 seconds",
    health: { interval: "500 millis", timeout: "1 second" },
    patroni: { urls: input.patroni.map((url) => Redacted.make(url)), timeout: "1 second" }
  })
  const routed = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | SqlRouter.SqlRouter>) =>
    effect.pipe(Effect.provideService(SqlRouter.SqlRouter, router), Effect.provideService(SqlClient.SqlClient, client))
  yield* routed(SqlRouter.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`CREATE TABLE IF NOT EXISTS ${sql(input.table)} (id serial PRIMARY KEY, at timestamptz DEFAULT now())`)))
  const write = routed(SqlRouter.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ port: number }>`INSERT INTO ${sql(input.table)} DEFAULT VALUES RETURNING inet_server_port() AS port`,
      (rows) => rows[0]!.port
    ))))
  yield* say(`WRITE ${yield* write}`)
  yield* say(`READ ${yield* routed(SqlRouter.withRead(serverPort))}`)
  yield* say("READY")
  const killed = Number((yield* Effect.promise(nextLine)).split(" ")[1])
  const started = Date.now()
  const landed = yield* write.pipe(
    Effect.filterOrFail((port) => port !== killed, () => "still the old leader"),
    Effect.retry({ schedule: Schedule.spaced("500 millis") }),
    Effect.timeout("120 seconds")
  )
  yield* say(`FAILOVER ${landed} ${Date.now() - started}`)
  yield* say(`READ ${yield* routed(SqlRouter.withRead(serverPort))}`)
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error) => {
    console.error(`FAILED ${String(error)}`)
    process.exit(1)
  }
)

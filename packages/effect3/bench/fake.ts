/**
 * CPU cost of a routed statement without the network: the cluster is real
 * (the router needs a primary at build), then every node's pool is replaced
 * by one whose queries answer on the next turn of the event loop. Prints µs
 * of client CPU per query. `npx tsx bench/fake.ts [flags]`:
 *
 *   --real            keep the network (the same loops against the servers)
 *   --timeout         the router with `readTimeout: "5 seconds"`
 *   --routed-only     only the routed statement, 4 s windows (for --cpu-prof)
 *   --withread-only   only `withRead`, 4 s windows
 *   --prebuilt        a statement built once against one built per query
 *   --fibers          32 long-lived fibers in one runtime (FLOOR=1: the Effect floor)
 *   --pools           with --real: the Effect floor on a node's pool (pg-pool's connect
 *                     and idle timeouts set) against a plain pool to the same server
 *
 * FLOOR_NODE=<i> runs the Effect floor on node i's pool (0 = primary).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import Pg from "pg"
import * as RoutedClient from "#lib/RoutedClient.js"
import type * as RouterConfig from "#lib/RouterConfig.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as BenchCluster from "./cluster.js"
import { fake } from "./fakePool.js"
import { routerConfig } from "./systems.js"


const measure = async (name: string, concurrency: number, op: () => Promise<unknown>, ms = 1500) => {
  const end = performance.now() + 300
  await Promise.all(Array.from({ length: concurrency }, async () => { while (performance.now() < end) await op() }))
  let n = 0
  const cpu0 = process.cpuUsage()
  const stop = performance.now() + ms
  await Promise.all(Array.from({ length: concurrency }, async () => { while (performance.now() < stop) { await op(); n++ } }))
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(`${name.padEnd(40)} c=${concurrency} ${((cpu.user + cpu.system) / n).toFixed(1)} µs/q  ${n} queries\n`)
}

const program = Effect.gen(function*() {
  const bench = yield* BenchCluster.make({ replicas: 2 })
  const extra: Partial<RouterConfig.RouterConfig> = process.argv.includes("--timeout") ? { readTimeout: "5 seconds" } : {}
  const runtime = ManagedRuntime.make(RoutedClient.layer(routerConfig(bench, bench.replicas, extra)) as Layer.Layer<SqlClient.SqlClient | SqlRouter.SqlRouter>)
  yield* Effect.addFinalizer(() => Effect.promise(() => runtime.dispose()))
  const sql = yield* Effect.promise(() => runtime.runPromise(SqlClient.SqlClient))
  const router = yield* Effect.promise(() => runtime.runPromise(SqlRouter.SqlRouter))
  const nodes = [yield* router.primary, ...(yield* router.replicas)]
  // --real keeps the network: the same loops against the servers.
  if (!process.argv.includes("--real")) for (const node of nodes) fake(node.pool)
  const select1 = Effect.flatMap(SqlClient.SqlClient, (s) => s`SELECT 1`)
  const pool = nodes[Number(process.env.FLOOR_NODE ?? 0)]!.pool
  const raw = () => new Promise((resolve) => pool.connect((_e, client, release) => client!.query("SELECT 1", [], (_err: unknown, r: unknown) => { release(); resolve(r) })))
  const floor = Effect.async<unknown>((resume) => { pool.connect((_e, client, release) => client!.query("SELECT 1", [], (_err: unknown, r: unknown) => { release(); resume(Effect.succeed(r)) })) })
  yield* Effect.promise(async () => {
    const only = process.argv.includes("--routed-only")
    for (let i = 0; i < 3; i++) {
      if (process.argv.includes("--pools")) {
        // The same Effect floor on the router's node pool and on a plain pool to the same server.
        const nodePool = nodes[1]!.pool
        const plainPool = new Pg.Pool({ connectionString: (nodePool.options as { connectionString: string }).connectionString, max: 10 })
        plainPool.on("error", () => {})
        const on = (target: Pg.Pool) =>
          Effect.async<unknown>((resume) => {
            target.connect((_e, client, release) =>
              client!.query("SELECT 1", [], (_err: unknown, r: unknown) => {
                release()
                resume(Effect.succeed(r))
              }))
          })
        await measure("floor on the node's pool (timeouts set)", 32, () => runtime.runPromise(on(nodePool)))
        await measure("floor on a plain pool (no timeouts)", 32, () => runtime.runPromise(on(plainPool)))
        await plainPool.end()
        continue
      }
      if (process.argv.includes("--fibers")) {
        // Long-lived fibers in one runtime, as in an Effect application.
        const loop = (effect: Effect.Effect<unknown, unknown>, name: string) =>
          measure(name, 1, () =>
            runtime.runPromise(Effect.all(Array.from({ length: 32 }, () => Effect.repeatN(Effect.ignore(effect), 199)), {
              concurrency: "unbounded",
              discard: true
            })), 3000)
        await loop(process.env.FLOOR === "1" ? floor : sql`SELECT 1`, process.env.FLOOR === "1" ? "floor, fibers (per 6400)" : "routed, fibers (per 6400)")
        continue
      }
      if (process.argv.includes("--withread-only")) { await measure("withRead (runPromise)", 32, () => runtime.runPromise(router.withRead(select1)), 4000); continue }
      if (only) { await measure("routed statement (runPromise)", 32, () => runtime.runPromise(sql`SELECT 1`), 4000); continue }
      if (process.argv.includes("--prebuilt")) {
        const st = sql`SELECT 1`
        await measure("routed statement, built once (runPromise)", 32, () => runtime.runPromise(st))
        await measure("routed statement (runPromise)", 32, () => runtime.runPromise(sql`SELECT 1`))
        continue
      }
      await measure("fake pool, promise", 32, raw)
      await measure("fake pool, runPromise(Effect.async)", 32, () => runtime.runPromise(floor))
      await measure("routed statement (runPromise)", 32, () => runtime.runPromise(sql`SELECT 1`))
      await measure("routed statement on the primary (runPromise)", 32, () => runtime.runPromise(SqlRouter.primary(sql`SELECT 1`)))
      await measure("withRead (runPromise)", 32, () => runtime.runPromise(router.withRead(select1)))
      if (!process.argv.includes("--real")) {
        await measure("routed write (runPromise)", 32, () => runtime.runPromise(sql`UPDATE t SET v = 1`))
      }
    }
  })
}).pipe(Effect.scoped)

Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })

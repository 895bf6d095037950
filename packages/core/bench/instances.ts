/**
 * The many-instances benchmark both lines share (`bench/instances.ts` in each
 * line): what PostgreSQL sees when the router is embedded in R app instances.
 * Plain Node and `pg`, no Effect: the line only starts the cluster and makes
 * one router instance (its `SqlRouter` layer) in a child process.
 *
 * For each R (default 1, 10, 50) the parent forks P child processes holding
 * R / P routers each, and samples every node from the server side over one
 * persistent connection per node (`application_name` `instances-sampler`,
 * excluded from every count):
 *
 * - connections: `pg_stat_activity` rows with `backend_type = 'client backend'`
 *   and the routers' `application_name` (the default, `effect-sql-router`);
 * - statements: `pg_stat_statements` (preloaded on every node) calls, split
 *   by text into the workload's (`bench_kv`), the sampler's (marked with a
 *   comment) and the rest: the router's own (health probes, catalog reads);
 * - new connections: `pg_stat_database.sessions`.
 *
 * Phases per R: start the routers; wait `idleTimeout` + settle and measure
 * "idle at start"; run the load (each instance 20 reads/s + 2 writes/s, open
 * loop) and measure it after a warm-up; stop the load, wait `idleTimeout` +
 * settle and measure "idle after load" (the pools' idle connections have
 * had time to close); stop the routers.
 */
import * as ChildProcess from "node:child_process"
import * as Os from "node:os"
import { performance } from "node:perf_hooks"
import Pg from "pg"
import { gitCommit } from "./host.js"
import { table } from "./report.js"
import * as Workload from "./workload.js"

// -----------------------------------------------------------------------------
// Plan
// -----------------------------------------------------------------------------

export interface Plan {
  readonly quick: boolean
  readonly out: string
  /** Router instances per run (R). */
  readonly counts: ReadonlyArray<number>
  /** Most routers one child process holds. */
  readonly perProcess: number
  /** The routers' `idleTimeout`. */
  readonly idleTimeoutMs: number
  /** Waited beyond `idleTimeout` before an idle window. */
  readonly settleMs: number
  readonly idleWindowMs: number
  readonly loadWarmupMs: number
  readonly loadWindowMs: number
  /** Between two connection samples. */
  readonly sampleEveryMs: number
  readonly readsPerSecond: number
  readonly writesPerSecond: number
}

/** `--quick` (R = 1, 4; short windows), `--out <file>`, `--counts 1,10,50`; any other flag throws. */
export const parseArgs = (argv: ReadonlyArray<string>, defaultOut: string): Plan => {
  let quick = false
  let out = defaultOut
  let counts: Array<number> | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--quick") quick = true
    else if (arg === "--out" && argv[i + 1] !== undefined) out = argv[++i]!
    else if (arg === "--counts" && argv[i + 1] !== undefined) {
      counts = argv[++i]!.split(",").map((text) => {
        const n = Number(text)
        if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`--counts needs whole numbers 1..200, got "${text}"`)
        return n
      })
    } else throw new Error(`unknown or incomplete flag ${arg} (known: --quick, --out <file>, --counts <n,n>)`)
  }
  return quick
    ? {
      quick,
      out,
      counts: counts ?? [1, 4],
      perProcess: 10,
      idleTimeoutMs: 2000,
      settleMs: 1500,
      idleWindowMs: 3000,
      loadWarmupMs: 1000,
      loadWindowMs: 3000,
      sampleEveryMs: 250,
      readsPerSecond: 20,
      writesPerSecond: 2
    }
    : {
      quick,
      out,
      counts: counts ?? [1, 10, 50],
      perProcess: 10,
      idleTimeoutMs: 5000,
      // The health watchers back off from 1 s to their 15 s ceiling while calm (1 + 2 + 4 + 8 + 15 s):
      // an idle window opens once that has happened, and spans more than one ceiling.
      settleMs: 30_000,
      idleWindowMs: 20_000,
      loadWarmupMs: 3000,
      loadWindowMs: 10_000,
      sampleEveryMs: 500,
      readsPerSecond: 20,
      writesPerSecond: 2
    }
}

/** R routers over P processes: one process for R = 1, else at least 2, at most `perProcess` routers each. */
export const layout = (instances: number, perProcess: number): ReadonlyArray<number> => {
  const processes = instances === 1 ? 1 : Math.max(2, Math.ceil(instances / perProcess))
  return Array.from(
    { length: processes },
    (_, i) => Math.floor(instances / processes) + (i < instances % processes ? 1 : 0)
  )
}

// -----------------------------------------------------------------------------
// Cluster
// -----------------------------------------------------------------------------

/** The routers' `application_name` (the router's default): the connections counted. */
export const routerApplicationName = "effect-sql-router"

const samplerName = "instances-sampler"
/** In every sampler statement's text (a column alias: pg_stat_statements keeps it, unlike a leading comment). */
const mark = "instances_sampler"

/** Every node preloads pg_stat_statements; `max_connections` leaves room above the before figures (≈ 144 at R = 50). */
export const serverSettings: Readonly<Record<string, string>> = {
  max_connections: "300",
  shared_preload_libraries: "pg_stat_statements",
  "pg_stat_statements.track": "all"
}

/** Run on the primary (and replicated) before any measurement. */
export const setupStatements: ReadonlyArray<string> = [
  "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
  ...Workload.setupStatements
]

export interface NodeInfo {
  readonly name: string
  readonly role: "primary" | "replica"
  /** Plain URL: handed to the children over IPC, never printed. */
  readonly url: string
}

interface Counters {
  readonly at: number
  readonly workload: number
  readonly sampler: number
  readonly own: number
  readonly sessions: number
  /** The router's own statements by text, for the report's list. */
  readonly texts: ReadonlyMap<string, number>
}

class Sampler {
  private constructor(readonly node: NodeInfo, private readonly client: Pg.Client) {}

  static async open(node: NodeInfo): Promise<Sampler> {
    const client = new Pg.Client({ connectionString: node.url, application_name: samplerName })
    await client.connect()
    return new Sampler(node, client)
  }

  async connections(): Promise<number> {
    const { rows } = await this.client.query<{ instances_sampler: number }>(
      `SELECT count(*)::int AS ${mark} FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND application_name = $1 AND pid <> pg_backend_pid()`,
      [routerApplicationName]
    )
    return rows[0]!.instances_sampler
  }

  /** Client backends by `application_name` and state (the sampler's excluded). */
  async byApplication(): Promise<ReadonlyMap<string, number>> {
    const { rows } = await this.client.query<{ application_name: string; instances_sampler: number }>(
      `SELECT application_name || ' (' || coalesce(state, 'starting') || ')' AS application_name, count(*)::int AS ${mark}
         FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1`
    )
    return new Map(rows.map((row) => [row.application_name, row.instances_sampler]))
  }

  /** Every client backend but this one: what counts against `max_connections`. */
  async backends(): Promise<number> {
    const { rows } = await this.client.query<{ instances_sampler: number }>(
      `SELECT count(*)::int AS ${mark} FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`
    )
    return rows[0]!.instances_sampler
  }

  async counters(): Promise<Counters> {
    const statements = await this.client.query<{ query: string; instances_sampler: string }>(
      `SELECT query, sum(calls)::text AS ${mark} FROM pg_stat_statements GROUP BY query`
    )
    const sessions = await this.client.query<{ instances_sampler: string }>(
      `SELECT coalesce(sum(sessions), 0)::text AS ${mark} FROM pg_stat_database`
    )
    let workload = 0
    let sampler = 0
    let own = 0
    const texts = new Map<string, number>()
    for (const row of statements.rows) {
      const calls = Number(row.instances_sampler)
      if (row.query.includes(mark)) sampler += calls
      else if (row.query.includes("bench_kv")) workload += calls
      else {
        own += calls
        const text = row.query.replace(/\s+/g, " ").trim()
        texts.set(text, (texts.get(text) ?? 0) + calls)
      }
    }
    return { at: performance.now(), workload, sampler, own, sessions: Number(sessions.rows[0]!.instances_sampler), texts }
  }

  close(): Promise<void> {
    return this.client.end()
  }
}

// -----------------------------------------------------------------------------
// Children
// -----------------------------------------------------------------------------

/** One router instance, as the line makes it. */
export interface Instance {
  readonly read: (k: number) => Promise<unknown>
  readonly write: (k: number) => Promise<unknown>
  readonly close: () => Promise<void>
}

export interface InstanceOptions {
  readonly primary: string
  readonly replicas: ReadonlyArray<string>
  readonly idleTimeoutMs: number
}

type ToChild =
  | { readonly type: "start"; readonly options: InstanceOptions; readonly routers: number; readonly plan: Plan }
  | { readonly type: "load" }
  | { readonly type: "quiet" }
  | { readonly type: "stop" }

export interface ChildStats {
  readonly instances: number
  /** Routers whose layer failed to build, or that had a failed read or write. */
  readonly failedInstances: number
  readonly reads: number
  readonly writes: number
  readonly failedReads: number
  readonly failedWrites: number
  /** The first few distinct failure messages (first line only). */
  readonly errors: ReadonlyArray<string>
}

type FromChild =
  | { readonly type: "ready" }
  | { readonly type: "quiet" }
  | { readonly type: "stopped"; readonly stats: ChildStats }

const childFlag = "EFFECT_SQL_ROUTER_INSTANCES_CHILD"

/** True in a process forked by `runParent`. */
export const isChild = (): boolean => process.env[childFlag] === "1"

/** The next link of a failure's chain: its `cause`, or an Effect 4 `SqlError`'s `reason`. */
const causeOf = (error: unknown): unknown => {
  if (error === null || typeof error !== "object") return undefined
  const { cause, reason } = error as { cause?: unknown; reason?: unknown }
  return cause ?? (reason !== null && typeof reason === "object" ? reason : undefined)
}

/** The failure's first line, and its causes' (`←`), so that a report says why. */
const firstLine = (error: unknown): string => {
  const lines: Array<string> = []
  for (let current = error, i = 0; current !== undefined && current !== null && i < 4; current = causeOf(current), i++) {
    const text = current instanceof Error ? `${current.name}: ${current.message}` : String(current)
    const line = text.split("\n")[0]!
    if (lines.at(-1) !== line) lines.push(line)
  }
  // A router error never holds a password, but a driver's might quote a URL: none is kept.
  return lines.join(" ← ").replace(/postgres(ql)?:\/\/\S+/g, "<url>").slice(0, 300)
}

/** The child's side: makes its routers, runs the load when told, reports what failed. */
export const runChild = (make: (options: InstanceOptions) => Promise<Instance>): void => {
  const send = (message: FromChild) => process.send!(message)
  const slots: Array<{ instance: Instance | undefined; failed: boolean }> = []
  const errors = new Set<string>()
  let reads = 0, writes = 0, failedReads = 0, failedWrites = 0
  let timers: Array<ReturnType<typeof setInterval>> = []
  const inFlight = new Set<Promise<unknown>>()
  let plan: Plan | undefined
  const fail = (slot: { failed: boolean }, error: unknown) => {
    slot.failed = true
    if (errors.size < 5) errors.add(firstLine(error))
  }
  const fire = (slot: (typeof slots)[number], write: boolean) => {
    const instance = slot.instance
    if (instance === undefined) return
    const k = 1 + Math.floor(Math.random() * Workload.keys)
    const done = (write ? instance.write(k) : instance.read(k)).then(
      () => write ? writes++ : reads++,
      (error) => {
        write ? failedWrites++ : failedReads++
        fail(slot, error)
      }
    )
    inFlight.add(done)
    void done.finally(() => inFlight.delete(done))
  }
  process.on("message", async (message: ToChild) => {
    switch (message.type) {
      case "start": {
        plan = message.plan
        const options = message.options
        await Promise.all(Array.from({ length: message.routers }, async () => {
          const slot = { instance: undefined as Instance | undefined, failed: false }
          slots.push(slot)
          try {
            slot.instance = await make(options)
          } catch (error) {
            fail(slot, error)
          }
        }))
        return send({ type: "ready" })
      }
      case "load": {
        const p = plan!
        for (const slot of slots) {
          // Each instance starts at a random phase, so that the instances' ticks do not coincide.
          const delay = Math.random() * (1000 / p.readsPerSecond)
          timers.push(setTimeout(() => {
            timers.push(setInterval(() => fire(slot, false), 1000 / p.readsPerSecond))
            timers.push(setInterval(() => fire(slot, true), 1000 / p.writesPerSecond))
          }, delay) as unknown as ReturnType<typeof setInterval>)
        }
        return
      }
      case "quiet": {
        for (const timer of timers) clearInterval(timer)
        timers = []
        await Promise.allSettled([...inFlight])
        return send({ type: "quiet" })
      }
      case "stop": {
        await Promise.allSettled(slots.map((slot) => slot.instance?.close()))
        send({
          type: "stopped",
          stats: {
            instances: slots.length,
            failedInstances: slots.filter((slot) => slot.failed).length,
            reads,
            writes,
            failedReads,
            failedWrites,
            errors: [...errors]
          }
        })
        return process.disconnect()
      }
    }
  })
}

class Child {
  private waiters: Array<{ type: FromChild["type"]; resolve: (message: FromChild) => void }> = []
  private exited: Error | undefined
  readonly process: ChildProcess.ChildProcess

  constructor(script: string) {
    this.process = ChildProcess.fork(script, [], {
      env: { ...process.env, [childFlag]: "1" },
      execArgv: process.execArgv,
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    this.process.on("message", (message: FromChild) => {
      const i = this.waiters.findIndex((w) => w.type === message.type)
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(message)
    })
    this.process.on("exit", (code, signal) => {
      this.exited = new Error(`a child process exited (code ${code}, signal ${signal})`)
    })
  }

  request<T extends FromChild["type"]>(message: ToChild, reply: T, timeoutMs = 120_000): Promise<Extract<FromChild, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(this.exited)
      const timer = setTimeout(() => reject(new Error(`no "${reply}" from a child within ${timeoutMs} ms`)), timeoutMs)
      this.waiters.push({
        type: reply,
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m as Extract<FromChild, { type: T }>)
        }
      })
      this.process.send(message)
    })
  }

  send(message: ToChild): void {
    this.process.send(message)
  }

  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill("SIGKILL")
  }
}

// -----------------------------------------------------------------------------
// Measuring
// -----------------------------------------------------------------------------

export interface NodeWindow {
  readonly connections: { readonly min: number; readonly max: number; readonly mean: number }
  /** Per second over the window. */
  readonly ownPerSecond: number
  readonly workloadPerSecond: number
  readonly newConnectionsPerSecond: number
  /** The most client backends of each `application_name` seen at once over the window. */
  readonly peakByApplication: ReadonlyMap<string, number>
}

export interface RunResult {
  readonly instances: number
  readonly processes: ReadonlyArray<number>
  /** By node name. */
  readonly idleStart: ReadonlyMap<string, NodeWindow>
  readonly load: ReadonlyMap<string, NodeWindow>
  readonly idleAfter: ReadonlyMap<string, NodeWindow>
  readonly stats: ChildStats
  /** The router's own statements over the idle-after-load window, per node, by text (calls per second). */
  readonly ownTexts: ReadonlyMap<string, ReadonlyArray<readonly [string, number]>>
  /** The same over the load window. */
  readonly ownTextsUnderLoad: ReadonlyMap<string, ReadonlyArray<readonly [string, number]>>
  /** The highest connection count any node had (every backend, the sampler's included) while the run lasted. */
  readonly peakBackends: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const measureWindow = async (
  samplers: ReadonlyArray<Sampler>,
  plan: Plan
): Promise<{ windows: Map<string, NodeWindow>; texts: Map<string, ReadonlyArray<readonly [string, number]>> }> => {
  const before = await Promise.all(samplers.map((s) => s.counters()))
  const counts: Array<Array<number>> = samplers.map(() => [])
  const peaks: Array<Map<string, number>> = samplers.map(() => new Map())
  const end = performance.now() + plan.idleWindowMs
  do {
    const n = await Promise.all(samplers.map((s) => s.connections()))
    n.forEach((value, i) => counts[i]!.push(value))
    const apps = await Promise.all(samplers.map((s) => s.byApplication()))
    apps.forEach((byApp, i) => {
      for (const [name, count] of byApp) peaks[i]!.set(name, Math.max(count, peaks[i]!.get(name) ?? 0))
    })
    await sleep(plan.sampleEveryMs)
  } while (performance.now() < end)
  const after = await Promise.all(samplers.map((s) => s.counters()))
  const windows = new Map<string, NodeWindow>()
  const texts = new Map<string, ReadonlyArray<readonly [string, number]>>()
  samplers.forEach((s, i) => {
    const a = before[i]!, b = after[i]!
    const seconds = (b.at - a.at) / 1000
    const c = counts[i]!
    windows.set(s.node.name, {
      connections: { min: Math.min(...c), max: Math.max(...c), mean: c.reduce((x, y) => x + y, 0) / c.length },
      ownPerSecond: (b.own - a.own) / seconds,
      workloadPerSecond: (b.workload - a.workload) / seconds,
      newConnectionsPerSecond: (b.sessions - a.sessions) / seconds,
      peakByApplication: peaks[i]!
    })
    texts.set(
      s.node.name,
      [...b.texts].map(([text, calls]) => [text, (calls - (a.texts.get(text) ?? 0)) / seconds] as const)
        .filter(([, rate]) => rate > 0)
        .sort((x, y) => y[1] - x[1])
    )
  })
  return { windows, texts }
}

const peakOf = async (samplers: ReadonlyArray<Sampler>): Promise<number> => {
  const counts = await Promise.all(samplers.map((s) => s.backends()))
  return Math.max(...counts)
}

/** One R: fork, idle, load, idle, stop. Children are killed whatever happens. */
const runOne = async (
  script: string,
  nodes: ReadonlyArray<NodeInfo>,
  samplers: ReadonlyArray<Sampler>,
  plan: Plan,
  instances: number,
  log: (message: string) => void
): Promise<RunResult> => {
  const processes = layout(instances, plan.perProcess)
  const children = processes.map(() => new Child(script))
  try {
    const options: InstanceOptions = {
      primary: nodes.find((n) => n.role === "primary")!.url,
      replicas: nodes.filter((n) => n.role === "replica").map((n) => n.url),
      idleTimeoutMs: plan.idleTimeoutMs
    }
    log(`R = ${instances}: ${processes.length} process(es) × ${processes.join("/")} routers`)
    await Promise.all(children.map((c, i) => c.request({ type: "start", options, routers: processes[i]!, plan }, "ready")))
    await sleep(plan.idleTimeoutMs + plan.settleMs)
    log(`R = ${instances}: idle at start`)
    const idleStart = await measureWindow(samplers, plan)
    for (const c of children) c.send({ type: "load" })
    await sleep(plan.loadWarmupMs)
    log(`R = ${instances}: under load`)
    const load = await measureWindow(samplers, { ...plan, idleWindowMs: plan.loadWindowMs })
    const peakBackends = await peakOf(samplers)
    await Promise.all(children.map((c) => c.request({ type: "quiet" }, "quiet")))
    await sleep(plan.idleTimeoutMs + plan.settleMs)
    log(`R = ${instances}: idle after load`)
    const idleAfter = await measureWindow(samplers, plan)
    const stopped = await Promise.all(children.map((c) => c.request({ type: "stop" }, "stopped")))
    const stats = stopped.map((m) => m.stats).reduce((a, b) => ({
      instances: a.instances + b.instances,
      failedInstances: a.failedInstances + b.failedInstances,
      reads: a.reads + b.reads,
      writes: a.writes + b.writes,
      failedReads: a.failedReads + b.failedReads,
      failedWrites: a.failedWrites + b.failedWrites,
      errors: [...new Set([...a.errors, ...b.errors])].slice(0, 5)
    }))
    return {
      instances,
      processes,
      idleStart: idleStart.windows,
      load: load.windows,
      idleAfter: idleAfter.windows,
      stats,
      ownTexts: idleAfter.texts,
      ownTextsUnderLoad: load.texts,
      peakBackends
    }
  } finally {
    for (const c of children) c.kill()
  }
}

export interface ParentOptions {
  /** The line's own file: forked once per child process. */
  readonly script: string
  readonly nodes: ReadonlyArray<NodeInfo>
  readonly plan: Plan
  readonly log: (message: string) => void
}

/** The parent's side: every R in turn, one sampler connection per node for the whole run. */
export const runParent = async (options: ParentOptions): Promise<ReadonlyArray<RunResult>> => {
  const samplers: Array<Sampler> = []
  try {
    for (const node of options.nodes) samplers.push(await Sampler.open(node))
    const results: Array<RunResult> = []
    for (const instances of options.plan.counts) {
      results.push(await runOne(options.script, options.nodes, samplers, options.plan, instances, options.log))
    }
    return results
  } finally {
    await Promise.allSettled(samplers.map((s) => s.close()))
  }
}

// -----------------------------------------------------------------------------
// Report
// -----------------------------------------------------------------------------

export interface ReportInput {
  readonly title: string
  readonly command: string
  readonly plan: Plan
  readonly nodes: ReadonlyArray<NodeInfo>
  readonly postgres: string
  readonly libraries: string
  readonly results: ReadonlyArray<RunResult>
}

const f1 = (n: number) => Number.isFinite(n) ? n.toFixed(1) : "–"
const f2 = (n: number) => Number.isFinite(n) ? n.toFixed(2) : "–"
const range = (c: NodeWindow["connections"]) => c.min === c.max ? `${c.min}` : `${c.min}–${c.max}`
const ok = (pass: boolean) => pass ? "✅" : "❌"

/** The Markdown report: per R and node, connections, the router's own statements, new connections; the targets. */
export const render = (input: ReportInput): string => {
  const { plan, results } = input
  const lines: Array<string> = []
  const seconds = (ms: number) => `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`
  lines.push(`# ${input.title}`, "")
  lines.push(
    `Generated by \`${input.command}\`${plan.quick ? " (**--quick**: a smoke run, not figures to keep)" : ""} on ${
      new Date().toISOString().slice(0, 10)
    }, commit ${gitCommit() ?? "unknown"}.`,
    ""
  )
  lines.push(
    `Machine: ${Os.cpus().length} cores (${Os.cpus()[0]?.model ?? "unknown"}), Node ${process.version}, ` +
      `PostgreSQL ${input.postgres} (embedded, on loopback), ${input.libraries}.`,
    ""
  )
  lines.push(
    "## Setup",
    "",
    `- One cluster: primary + ${input.nodes.length - 1} streaming replicas, \`max_connections\` ${serverSettings.max_connections}, ` +
      "`pg_stat_statements` preloaded on every node.",
    `- R router instances spread over child processes (at most ${plan.perProcess} per process; R = 1 in one process, ` +
      "otherwise at least two). Each router is a full `SqlRouter` layer with the default configuration except the URLs and " +
      `\`idleTimeout: ${seconds(plan.idleTimeoutMs)}\` (default 30 s), short so that "idle after idleTimeout" fits in the run.`,
    `- Load: each instance ${plan.readsPerSecond} reads/s (\`withRead\`, \`SELECT v FROM bench_kv WHERE k = $1\`) and ` +
      `${plan.writesPerSecond} writes/s (\`withWrite\`, an \`UPDATE\`), open loop, each instance at a random phase.`,
    `- Windows: idle at start (after \`idleTimeout\` + ${seconds(plan.settleMs)}, ${seconds(plan.idleWindowMs)}); ` +
      `under load (after ${seconds(plan.loadWarmupMs)} of warm-up, ${seconds(plan.loadWindowMs)}); idle after load ` +
      `(load stopped, after \`idleTimeout\` + ${seconds(plan.settleMs)}, ${seconds(plan.idleWindowMs)}).`,
    "- Counted from the server side, over one sampler connection per node that every count excludes: connections = " +
      "`pg_stat_activity` client backends with the routers' `application_name` (`effect-sql-router`), sampled every " +
      `${plan.sampleEveryMs} ms (min–max over the window); **own statements/s** = \`pg_stat_statements\` calls that are ` +
      "neither the workload's (`bench_kv`) nor the sampler's: health probes, catalog reads, anything the router runs by itself; " +
      "new connections/s = `pg_stat_database.sessions`.",
    "- An instance fails when its layer does not build or any of its reads or writes fails. The load is open loop: " +
      "when the machine cannot keep up (every child process, the sampler and the three servers share its cores), " +
      "fewer statements run than the nominal rate; the Instances table shows both.",
    ""
  )
  const names = input.nodes.map((n) => n.name)
  lines.push("## Per node", "")
  const rows: Array<Array<string>> = []
  for (const r of results) {
    for (const name of names) {
      const a = r.idleStart.get(name)!, l = r.load.get(name)!, b = r.idleAfter.get(name)!
      rows.push([
        `${r.instances}`,
        name,
        range(a.connections),
        range(l.connections),
        range(b.connections),
        f1(a.ownPerSecond),
        f1(l.ownPerSecond),
        f1(b.ownPerSecond),
        f1(l.workloadPerSecond),
        f2(l.newConnectionsPerSecond),
        f2(b.newConnectionsPerSecond)
      ])
    }
  }
  lines.push(
    table(
      [
        "R",
        "node",
        "conns idle (start)",
        "conns load",
        "conns idle (after load)",
        "own stmts/s idle (start)",
        "own stmts/s load",
        "own stmts/s idle (after)",
        "workload stmts/s",
        "new conns/s load",
        "new conns/s idle (after)"
      ],
      rows
    ),
    ""
  )
  lines.push("## Instances", "")
  lines.push(
    table(
      [
        "R",
        "processes",
        "workload stmts/s under load, all nodes (nominal)",
        "reads ok",
        "writes ok",
        "failed reads",
        "failed writes",
        "failed instances",
        "client backends on the busiest node, under load"
      ],
      results.map((r) => [
        `${r.instances}`,
        r.processes.join(" + "),
        `${f1(names.reduce((sum, n) => sum + r.load.get(n)!.workloadPerSecond, 0))} (${
          r.instances * (plan.readsPerSecond + plan.writesPerSecond)
        })`,
        `${r.stats.reads}`,
        `${r.stats.writes}`,
        `${r.stats.failedReads}`,
        `${r.stats.failedWrites}`,
        `${r.stats.failedInstances}`,
        `${r.peakBackends} / ${serverSettings.max_connections}`
      ])
    ),
    ""
  )
  const errors = [...new Set(results.flatMap((r) => r.stats.errors))]
  if (errors.length > 0) lines.push("Failures (first line of each distinct one):", "", ...errors.map((e) => `- \`${e}\``), "")
  lines.push("## Targets (issue 23)", "")
  const targetRows: Array<Array<string>> = []
  for (const r of results) {
    const limit = 0.1 * r.instances
    const worstIdle = Math.max(...names.map((n) => r.idleAfter.get(n)!.ownPerSecond))
    targetRows.push([
      `${r.instances}`,
      `own statements/s per node while idle ≤ 0.1 × R = ${f1(limit)}`,
      `worst node ${f1(worstIdle)}`,
      ok(worstIdle <= limit)
    ])
    const replicaIdle = input.nodes.filter((n) => n.role === "replica").map((n) => r.idleAfter.get(n.name)!.connections.max)
    targetRows.push([
      `${r.instances}`,
      "connections to each replica after idleTimeout = 0",
      replicaIdle.join(", "),
      ok(replicaIdle.every((n) => n === 0))
    ])
    targetRows.push([
      `${r.instances}`,
      "no instance fails while connections remain",
      `${r.stats.failedInstances} failed, peak ${r.peakBackends} of ${serverSettings.max_connections}`,
      ok(r.stats.failedInstances === 0)
    ])
  }
  lines.push(table(["R", "target", "measured", "met"], targetRows), "")
  const last = results[results.length - 1]
  if (last !== undefined) {
    lines.push(`## Client backends by application_name and state (R = ${last.instances}, most at once under load, per node)`, "")
    for (const name of names) {
      const peaks = [...(last.load.get(name)?.peakByApplication ?? new Map<string, number>())].sort((x, y) => y[1] - x[1])
      lines.push(`- ${name}: ${peaks.length === 0 ? "none" : peaks.map(([app, n]) => `\`${app || "(none)"}\` ${n}`).join(", ")}`)
    }
    lines.push("")
    for (const [window, byNode] of [["idle after load", last.ownTexts], ["under load", last.ownTextsUnderLoad]] as const) {
      lines.push(`## What the router ran by itself (R = ${last.instances}, ${window}, calls/s per node)`, "")
      for (const name of names) {
        const texts = byNode.get(name) ?? []
        lines.push(`- ${name}:${texts.length === 0 ? " nothing" : ""}`)
        for (const [text, rate] of texts.slice(0, 6)) lines.push(`  - ${f2(rate)}/s \`${text.slice(0, 160).replace(/`/g, "'")}\``)
      }
      lines.push("")
    }
  }
  return lines.join("\n")
}

/** @internal */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import Pg from "pg"
import type { Backend, ClusterNode, Options, PgCluster, Role } from "../PgCluster.js"
import { ClusterError } from "../PgCluster.js"
import * as Backup from "@effect-sql-router/core/embedded/Backup"
import * as Binaries from "@effect-sql-router/core/embedded/Binaries"
import * as Cleanup from "@effect-sql-router/core/embedded/Cleanup"
import * as Process from "@effect-sql-router/core/embedded/Process"
import * as RunAs from "@effect-sql-router/core/embedded/RunAs"
import * as Signal from "@effect-sql-router/core/embedded/Signal"
import * as Template from "@effect-sql-router/core/embedded/Template"

/**
 * What differs between backends: how servers are started, stopped and
 * signalled. Everything said in SQL (replay, promotion, waiting) is shared.
 * @internal
 */
export interface Driver {
  readonly backend: Backend
  readonly directory: string | undefined
  readonly nodes: Array<ClusterNode>
  readonly stop: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly start: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly kill: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly freeze: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  readonly thaw: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Running, not frozen: a node that can answer SQL. */
  readonly isUp: (node: ClusterNode) => boolean
  readonly addReplica: (primary: ClusterNode) => Effect.Effect<ClusterNode, ClusterError>
  /** Stops the node and starts it as a standby of `primary`, data as it is. */
  readonly restartAsStandby: (node: ClusterNode, primary: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Stops the node, re-clones it from `primary` and starts it as its standby. */
  readonly rejoinAsStandby: (node: ClusterNode, primary: ClusterNode) => Effect.Effect<void, ClusterError>
}

const fail = (operation: string, node: ClusterNode | undefined, reason: string, cause?: unknown) =>
  new ClusterError({
    operation,
    reason,
    ...(node ? { node: node.name } : {}),
    ...(cause === undefined ? {} : { cause })
  })

/**
 * A base backup of the running primary at `primaryUrl` into `target` (see
 * `Backup.cloneFrom`), over a connection of its own for the length of it.
 */
const cloneFrom = async (primaryUrl: string, primaryDataDir: string, target: string): Promise<void> => {
  const client = new Pg.Client({ connectionString: primaryUrl, application_name: "pg-cluster-harness" })
  client.on("error", () => {})
  await client.connect()
  try {
    await Backup.cloneFrom(client, primaryDataDir, target)
  } finally {
    await client.end().catch(() => {})
  }
}

/** @internal */
export const makeNode = (name: string, role: Role, host: string, port: number, user = "postgres", database = "postgres"): ClusterNode => ({
  name,
  role,
  host,
  port,
  user,
  database,
  url: Redacted.make(`postgres://${user}@${host}:${port}/${database}`)
})

/** @internal */
export const nodeFromUrl = (name: string, role: Role, url: string): ClusterNode => {
  const parsed = new URL(url)
  return {
    name,
    role,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username || "postgres"),
    database: decodeURIComponent(parsed.pathname.slice(1) || "postgres"),
    url: Redacted.make(url)
  }
}

/** @internal */
export const queryNode = <A>(
  node: ClusterNode,
  sql: string,
  params: ReadonlyArray<unknown> = [],
  timeoutMs = 5_000
): Effect.Effect<ReadonlyArray<A>, ClusterError> =>
  Effect.tryPromise({
    // One connection per call: the harness must work while nodes die and
    // come back, so it never holds on to a connection. Interruption (e.g. a
    // timeout around a frozen server) closes it at once.
    try: async (signal) => {
      const client = new Pg.Client({
        connectionString: Redacted.value(node.url),
        connectionTimeoutMillis: timeoutMs,
        application_name: "pg-cluster-harness"
      })
      client.on("error", () => {})
      const close = () => void client.end().catch(() => {})
      signal.addEventListener("abort", close)
      try {
        await client.connect()
        return (await client.query(sql, params as Array<unknown>)).rows as ReadonlyArray<A>
      } finally {
        signal.removeEventListener("abort", close)
        close()
      }
    },
    catch: (cause) => fail("query", node, `${sql.slice(0, 80)}: ${String((cause as Error)?.message ?? cause)}`, cause)
  })

/** Polls until a connection and `SELECT 1` succeed, or the process dies. */
const awaitReady = (node: ClusterNode, alive: () => boolean, logFile: string | undefined, timeout: Duration.DurationInput) =>
  Effect.gen(function*() {
    for (;;) {
      if (!alive()) {
        return yield* fail("start", node, `the server exited${logFile ? `:\n${Process.tail(logFile)}` : ""}`)
      }
      const ok = yield* queryNode(node, "SELECT 1", [], 1_000).pipe(
        Effect.as(true),
        Effect.catchAll(() => Effect.succeed(false))
      )
      if (ok) return
      yield* Effect.sleep("25 millis")
    }
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        fail("start", node, `not accepting connections after ${Duration.format(timeout)}${logFile ? `:\n${Process.tail(logFile)}` : ""}`)
    })
  )

// The harness waits on real servers: it keeps real time even when the caller
// runs under TestClock.
const liveClock = Clock.make()
const live = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withClock(effect, liveClock)

interface EmbeddedServer {
  readonly node: ClusterNode
  readonly dataDir: string
  readonly logFile: string
  process: Process.ServerProcess | undefined
  frozen: boolean
}

/**
 * One embedded cluster: what start-up resolved once (account, binaries,
 * template, root directory) and its servers by name. The driver's operations
 * are functions over it.
 */
interface Embedded {
  readonly options: Options
  readonly runAs: RunAs.RunAs | undefined
  readonly binaries: Binaries.Binaries
  readonly template: string
  readonly startTimeout: Duration.DurationInput
  readonly root: string
  readonly servers: Map<string, EmbeddedServer>
}

const promise = <A>(operation: string, node: ClusterNode | undefined, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => fail(operation, node, String((cause as Error)?.message ?? cause), cause) })

const awaitGone = (proc: Process.ServerProcess) =>
  Effect.gen(function*() {
    yield* Effect.promise(() => proc.exited)
    while (Signal.groupAlive(proc.pid)) yield* Effect.sleep("10 millis")
  })

/** Kills every server and removes the root directory; the root's release. */
const removeRoot = (servers: Map<string, EmbeddedServer>, dir: string) =>
  live(Effect.gen(function*() {
    // Kill first, then wait: a clean stop buys nothing when the files go next.
    for (const server of servers.values()) {
      if (server.process && !server.process.hasExited()) {
        Signal.signalServer(server.process.pid, "SIGCONT")
        Signal.signalServer(server.process.pid, "SIGKILL")
      }
    }
    for (const server of servers.values()) {
      if (server.process) yield* awaitGone(server.process)
    }
    yield* Effect.promise(() => FsP.rm(dir, { recursive: true, force: true }))
    Cleanup.untrackDir(dir)
  }))

/** A fresh root directory for the cluster's files, removed (servers killed first) with the scope. */
const acquireRoot = (servers: Map<string, EmbeddedServer>) =>
  Effect.acquireRelease(
    promise("setup", undefined, async () => {
      Cleanup.sweepOrphans()
      const dir = await FsP.mkdtemp(Path.join(Os.tmpdir(), Cleanup.clusterDirPrefix()))
      Cleanup.trackDir(dir)
      await FsP.chmod(dir, 0o755)
      return dir
    }),
    (dir) => removeRoot(servers, dir)
  )

/** Resolves the account, binaries and template, and acquires the root directory. */
const startEmbedded = (options: Options): Effect.Effect<Embedded, ClusterError, Scope.Scope> =>
  Effect.gen(function*() {
    const runAs = yield* Effect.try({ try: RunAs.resolveRunAs, catch: (cause) => fail("setup", undefined, String(cause), cause) })
    const binaries = yield* promise("setup", undefined, () => Binaries.resolveBinaries(runAs))
    const template = yield* promise("initdb", undefined, () => Template.ensureTemplate(binaries, runAs))
    const servers = new Map<string, EmbeddedServer>()
    const root = yield* acquireRoot(servers)
    return { options, runAs, binaries, template, startTimeout: options.startTimeout ?? "60 seconds", root, servers }
  })

const serverOf = (cluster: Embedded, node: ClusterNode) => {
  const server = cluster.servers.get(node.name)
  return server ? Effect.succeed(server) : Effect.fail(fail("control", node, "not a node of this cluster"))
}

const launch = (cluster: Embedded, server: EmbeddedServer) =>
  Effect.gen(function*() {
    if (server.process && !server.process.hasExited()) return
    const proc = Process.spawnServer(cluster.binaries, server.dataDir, server.logFile, cluster.runAs)
    server.process = proc
    server.frozen = false
    yield* awaitReady(server.node, () => !proc.hasExited(), server.logFile, cluster.startTimeout)
  })

/** What every node of this cluster writes after the template's settings; its own port and name last. */
const nodeSettings = (options: Options, name: string, port: number): Record<string, string> => ({
  ...Template.optionSettings(options),
  ...options.settings,
  port: String(port),
  cluster_name: `'${name}'`
})

/** Makes a stopped data directory a standby of `primary` (the last primary_conninfo wins). */
const followPrimary = async (cluster: Embedded, dataDir: string, name: string, primary: ClusterNode) => {
  await FsP.appendFile(
    Path.join(dataDir, "postgresql.conf"),
    Template.renderSettings({
      primary_conninfo: `'host=${primary.host} port=${primary.port} user=${primary.user} application_name=${name}'`
    })
  )
  // A `follow` kept its upstream with ALTER SYSTEM, which would win over postgresql.conf.
  const auto = Path.join(dataDir, "postgresql.auto.conf")
  const kept = await FsP.readFile(auto, "utf8").catch(() => undefined)
  if (kept !== undefined && /^\s*primary_conninfo\s*=/m.test(kept)) {
    await FsP.writeFile(auto, kept.split("\n").filter((line) => !/^\s*primary_conninfo\s*=/.test(line)).join("\n"))
  }
  await FsP.writeFile(Path.join(dataDir, "standby.signal"), "")
  if (cluster.runAs) {
    await FsP.chown(Path.join(dataDir, "postgresql.conf"), cluster.runAs.uid, cluster.runAs.gid)
    await FsP.chown(Path.join(dataDir, "standby.signal"), cluster.runAs.uid, cluster.runAs.gid)
  }
}

/**
 * The primary is a copy of the template. A replica is a base backup of
 * the running primary: its pg_control then records the values the
 * primary runs with, so settings a standby must match (max_connections,
 * max_worker_processes, ...) can be lowered too. A template copy would
 * record initdb's, and recovery refuses a standby set below them.
 */
const create = (cluster: Embedded, name: string, role: Role, primary: EmbeddedServer | undefined) =>
  Effect.gen(function*() {
    const port = yield* promise("setup", undefined, Process.freePort)
    const node = makeNode(name, role, "127.0.0.1", port)
    const dataDir = Path.join(cluster.root, name)
    const server: EmbeddedServer = {
      node,
      dataDir,
      logFile: Path.join(cluster.root, `${name}.log`),
      process: undefined,
      frozen: false
    }
    // Registered first: the scope's release must find a server whose setup failed half-way.
    cluster.servers.set(name, server)
    yield* promise("setup", node, async () => {
      if (primary) await cloneFrom(Redacted.value(primary.node.url), primary.dataDir, dataDir)
      else await Template.copyDataDir(cluster.template, dataDir)
      await FsP.appendFile(Path.join(dataDir, "postgresql.conf"), Template.renderSettings(nodeSettings(cluster.options, name, port)))
      if (primary) await followPrimary(cluster, dataDir, name, primary.node)
      if (cluster.runAs) await RunAs.chownTree(dataDir, cluster.runAs)
    })
    return server
  })

const stop = (cluster: Embedded, node: ClusterNode) =>
  Effect.gen(function*() {
    const server = yield* serverOf(cluster, node)
    const proc = server.process
    if (!proc || proc.hasExited()) return
    Signal.signalServer(proc.pid, "SIGCONT")
    // SIGINT to the postmaster alone is PostgreSQL's "fast" shutdown.
    Signal.signalProcess(proc.pid, "SIGINT")
    yield* awaitGone(proc).pipe(
      Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => fail("stop", node, "did not shut down in 30s") }),
      Effect.tapError(() => Effect.sync(() => Signal.signalServer(proc.pid, "SIGKILL")))
    )
    server.frozen = false
  })

const kill = (cluster: Embedded, node: ClusterNode) =>
  Effect.gen(function*() {
    const server = yield* serverOf(cluster, node)
    const proc = server.process
    if (!proc || proc.hasExited()) return
    Signal.signalServer(proc.pid, "SIGKILL")
    yield* awaitGone(proc)
    server.frozen = false
  })

const signalRunning = (cluster: Embedded, operation: string, signal: NodeJS.Signals, frozen: boolean) => (node: ClusterNode) =>
  Effect.gen(function*() {
    const server = yield* serverOf(cluster, node)
    const proc = server.process
    if (!proc || proc.hasExited()) return yield* fail(operation, node, "the server is not running")
    Signal.signalServer(proc.pid, signal)
    server.frozen = frozen
  })

const isUp = (cluster: Embedded, node: ClusterNode) => {
  const server = cluster.servers.get(node.name)
  return !!server?.process && !server.process.hasExited() && !server.frozen
}

/** A new replica of `current`, started; `nodes` (the driver's list) gains it. */
const addReplica = (cluster: Embedded, nodes: Array<ClusterNode>, current: ClusterNode) =>
  Effect.gen(function*() {
    const server = yield* create(cluster, `replica-${cluster.servers.size - 1}`, "replica", yield* serverOf(cluster, current))
    yield* launch(cluster, server)
    nodes.push(server.node)
    return server.node
  })

const restartAsStandby = (cluster: Embedded, node: ClusterNode, current: ClusterNode) =>
  Effect.gen(function*() {
    const server = yield* serverOf(cluster, node)
    yield* stop(cluster, node)
    yield* promise("restartAsStandby", node, () => followPrimary(cluster, server.dataDir, node.name, current))
    yield* launch(cluster, server)
  })

const rejoinAsStandby = (cluster: Embedded, node: ClusterNode, current: ClusterNode) =>
  Effect.gen(function*() {
    const server = yield* serverOf(cluster, node)
    const source = yield* serverOf(cluster, current)
    yield* stop(cluster, node)
    yield* promise("rejoinAsStandby", node, async () => {
      // The node keeps its own settings (port, name); the rest is the primary's.
      const conf = await FsP.readFile(Path.join(server.dataDir, "postgresql.conf"))
      await cloneFrom(Redacted.value(current.url), source.dataDir, server.dataDir)
      await FsP.writeFile(Path.join(server.dataDir, "postgresql.conf"), conf)
      await followPrimary(cluster, server.dataDir, node.name, current)
      if (cluster.runAs) await RunAs.chownTree(server.dataDir, cluster.runAs)
    })
    yield* launch(cluster, server)
  })

/** The driver over a started cluster whose first servers are `nodes` (the primary first). */
const embeddedDriver = (cluster: Embedded, nodes: Array<ClusterNode>): Driver => ({
  backend: "embedded",
  directory: cluster.root,
  nodes,
  stop: (node) => stop(cluster, node),
  kill: (node) => kill(cluster, node),
  start: (node) => Effect.flatMap(serverOf(cluster, node), (server) => launch(cluster, server)),
  freeze: signalRunning(cluster, "freeze", "SIGSTOP", true),
  thaw: signalRunning(cluster, "thaw", "SIGCONT", false),
  isUp: (node) => isUp(cluster, node),
  addReplica: (current) => addReplica(cluster, nodes, current),
  restartAsStandby: (node, current) => restartAsStandby(cluster, node, current),
  rejoinAsStandby: (node, current) => rejoinAsStandby(cluster, node, current)
})

/**
 * Embedded backend: the primary is a copy of a cached initdb template; a
 * replica is a base backup of the running primary (the low-level backup API:
 * the binaries ship no pg_basebackup) with `standby.signal` and
 * `primary_conninfo`. Every node gets the same settings.
 * @internal
 */
export const embedded = (
  options: Options
): Effect.Effect<Driver, ClusterError, Scope.Scope> =>
  Effect.gen(function*() {
    const cluster = yield* startEmbedded(options)
    const primary = yield* create(cluster, "primary", "primary", undefined)
    yield* launch(cluster, primary)
    const replicas = yield* Effect.forEach(
      Array.from({ length: options.replicas ?? 2 }, (_, i) => `replica-${i}`),
      (name) => Effect.tap(create(cluster, name, "replica", primary), (server) => launch(cluster, server)),
      { concurrency: "unbounded" }
    )
    return embeddedDriver(cluster, [primary.node, ...replicas.map((r) => r.node)])
  })

const unsupported = (backend: Backend, operation: string) => (node: ClusterNode) =>
  Effect.fail(fail(operation, node, `the ${backend} backend cannot ${operation} a server`))

/**
 * External backend: servers somebody else runs. Only SQL controls work.
 * @internal
 */
export const external = (): Effect.Effect<Driver, ClusterError> =>
  Effect.gen(function*() {
    const primaryUrl = process.env["PG_CLUSTER_PRIMARY_URL"]
    if (!primaryUrl) {
      return yield* fail("setup", undefined, "the external backend needs PG_CLUSTER_PRIMARY_URL (and PG_CLUSTER_REPLICA_URLS)")
    }
    const replicaUrls = (process.env["PG_CLUSTER_REPLICA_URLS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean)
    const nodes = yield* Effect.try({
      try: () => [
        nodeFromUrl("primary", "primary", primaryUrl),
        ...replicaUrls.map((url, i) => nodeFromUrl(`replica-${i}`, "replica", url))
      ],
      catch: (cause) => fail("setup", undefined, "PG_CLUSTER_PRIMARY_URL / PG_CLUSTER_REPLICA_URLS is not a valid URL", cause)
    })
    return {
      backend: "external",
      directory: undefined,
      nodes,
      stop: unsupported("external", "stop"),
      start: unsupported("external", "start"),
      kill: unsupported("external", "kill"),
      freeze: unsupported("external", "freeze"),
      thaw: unsupported("external", "thaw"),
      isUp: () => true,
      addReplica: () => Effect.fail(fail("addReplica", undefined, "the external backend cannot start servers")),
      restartAsStandby: unsupported("external", "restart"),
      rejoinAsStandby: unsupported("external", "re-clone")
    } satisfies Driver
  })

const resolveBackend = (options: Options): Backend => {
  const backend = options.backend ?? process.env["PG_CLUSTER"] ?? "embedded"
  if (backend === "embedded" || backend === "testcontainers" || backend === "external") return backend
  throw new Error(`PG_CLUSTER must be embedded, testcontainers or external, got "${backend}"`)
}

/** @internal */
export const make = (options: Options = {}): Effect.Effect<PgCluster, ClusterError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const backend = yield* Effect.try({
      try: () => resolveBackend(options),
      catch: (cause) => fail("setup", undefined, (cause as Error).message)
    })
    const problem = Template.checkSettings(options.settings ?? {}, options.replicas ?? 2)
    if (problem) {
      return yield* new ClusterError({ operation: "setup", setting: problem.setting, reason: `${problem.setting} ${problem.reason}` })
    }
    const driver: Driver = backend === "embedded"
      ? yield* embedded(options)
      : backend === "external"
      ? yield* external()
      : yield* Effect.flatMap(
        Effect.promise(() => import("./containers.js")),
        (module) => module.testcontainers(options)
      )
    return fromDriver(driver)
  }))

/** The SQL half of the harness, the same for every backend. @internal */
export const fromDriver = (driver: Driver): PgCluster => {
  let primary = driver.nodes[0]!
  /** Names of the nodes that are standbys now: promotion takes one out, a rejoin puts one in. */
  const standbys = new Set(driver.nodes.filter((node) => node.role === "replica").map((node) => node.name))
  const paused = new Set<string>()
  const replicas = () => driver.nodes.filter((node) => node !== primary && standbys.has(node.name))

  const requireReplica = (operation: string, node: ClusterNode) =>
    node === primary || !standbys.has(node.name)
      ? Effect.fail(fail(operation, node, "not a replica"))
      : Effect.void

  const becomeStandby = (operation: string, run: (node: ClusterNode, primary: ClusterNode) => Effect.Effect<void, ClusterError>) =>
  (node: ClusterNode) =>
    live(Effect.gen(function*() {
      if (node === primary) return yield* fail(operation, node, "is the current primary: promote another node first")
      const current = primary
      yield* run(node, current)
      standbys.add(node.name)
      paused.delete(node.name)
    }))

  const cluster: PgCluster = {
    backend: driver.backend,
    directory: driver.directory,
    get primary() {
      return primary
    },
    get replicas() {
      return replicas()
    },
    get nodes() {
      return driver.nodes.slice()
    },
    stop: (node) => live(driver.stop(node)),
    start: (node) => live(driver.start(node)),
    kill: (node) => live(driver.kill(node)),
    freeze: (node) => live(driver.freeze(node)),
    thaw: (node) => live(driver.thaw(node)),
    query: (node, sql, params) => queryNode(node, sql, params),
    isInRecovery: (node) =>
      queryNode<{ r: boolean }>(node, "SELECT pg_is_in_recovery() AS r").pipe(Effect.map((rows) => rows[0]!.r)),
    pauseReplay: (node) =>
      requireReplica("pauseReplay", node).pipe(
        Effect.zipRight(queryNode(node, "SELECT pg_wal_replay_pause()")),
        Effect.zipRight(Effect.sync(() => paused.add(node.name)))
      ),
    resumeReplay: (node) =>
      requireReplica("resumeReplay", node).pipe(
        Effect.zipRight(queryNode(node, "SELECT pg_wal_replay_resume()")),
        Effect.zipRight(Effect.sync(() => paused.delete(node.name)))
      ),
    promote: (node) =>
      live(Effect.gen(function*() {
        yield* requireReplica("promote", node)
        const rows = yield* queryNode<{ ok: boolean }>(node, "SELECT pg_promote(true, 60) AS ok", [], 65_000)
        if (!rows[0]?.ok) return yield* fail("promote", node, "pg_promote() did not complete within 60s")
        standbys.delete(node.name)
        paused.delete(node.name)
        primary = node
      })),
    follow: (node, upstream) =>
      live(Effect.gen(function*() {
        yield* requireReplica("follow", node)
        if (upstream === node) return yield* fail("follow", node, "cannot follow itself")
        const conninfo = `host=${upstream.host} port=${upstream.port} user=${upstream.user} application_name=${node.name}`
        yield* queryNode(node, `ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`)
        yield* queryNode(node, "SELECT pg_reload_conf()")
        // The WAL receiver restarts with the new setting; wait until it streams from the upstream.
        for (;;) {
          const rows = yield* queryNode<{ ok: boolean }>(
            node,
            "SELECT count(*) > 0 AS ok FROM pg_stat_wal_receiver WHERE status = 'streaming' AND sender_port = $1",
            [upstream.port]
          )
          if (rows[0]?.ok) return
          yield* Effect.sleep("20 millis")
        }
      }).pipe(
        Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => fail("follow", node, `did not stream from ${upstream.name} within 30s`)
        })
      )),
    awaitReplication: (options = {}) =>
      live(Effect.gen(function*() {
        const targets = options.replicas ??
          replicas().filter((node) => driver.isUp(node) && !paused.has(node.name))
        const [{ lsn }] = (yield* queryNode<{ lsn: string }>(primary, "SELECT pg_current_wal_lsn()::text AS lsn")) as [
          { lsn: string }
        ]
        yield* Effect.forEach(targets, (node) =>
          Effect.gen(function*() {
            for (;;) {
              const rows = yield* queryNode<{ done: boolean }>(
                node,
                "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS done",
                [lsn]
              ).pipe(Effect.catchAll(() => Effect.succeed([{ done: false }])))
              if (rows[0]?.done) return
              yield* Effect.sleep("10 millis")
            }
          }), { concurrency: "unbounded", discard: true }).pipe(
          Effect.timeoutFail({
            duration: options.timeout ?? "30 seconds",
            onTimeout: () =>
              fail("awaitReplication", undefined, `replicas did not replay ${lsn} within ${Duration.format(options.timeout ?? "30 seconds")}`)
          })
        )
      })),
    addReplica: () =>
      live(Effect.tap(driver.addReplica(primary), (node) => Effect.sync(() => standbys.add(node.name)))),
    restartAsStandby: becomeStandby("restartAsStandby", driver.restartAsStandby),
    rejoinAsStandby: becomeStandby("rejoinAsStandby", driver.rejoinAsStandby)
  }
  return cluster
}

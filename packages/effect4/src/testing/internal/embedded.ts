/**
 * The embedded backend of the cluster harness: servers from the embedded
 * binaries in a temporary directory, started, stopped and signalled here.
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { ClusterError, ClusterNode, Options, Role } from "../PgCluster.js"
import type { Driver } from "./driver.js"
import { awaitReady, connect, fail, live, makeNode } from "./driver.js"
import * as Backup from "@effect-sql-router/core/embedded/Backup"
import * as Binaries from "@effect-sql-router/core/embedded/Binaries"
import * as Cleanup from "@effect-sql-router/core/embedded/Cleanup"
import * as Process from "@effect-sql-router/core/embedded/Process"
import * as RunAs from "@effect-sql-router/core/embedded/RunAs"
import * as Signal from "@effect-sql-router/core/embedded/Signal"
import * as Template from "@effect-sql-router/core/embedded/Template"

/**
 * A base backup of the running `primary` into `target` (see
 * `Backup.cloneFrom`), over a connection of its own for the length of it.
 */
const cloneFrom = (operation: string, node: ClusterNode, primary: ClusterNode, primaryDataDir: string, target: string) =>
  Effect.scoped(Effect.gen(function*() {
    const connection = yield* connect(primary)
    const run = Effect.runPromiseWith(yield* Effect.context<never>())
    const session: Backup.Session = { query: (sql) => run(connection.query(sql, [], false)) }
    yield* Effect.tryPromise(() => Backup.cloneFrom(session, primaryDataDir, target))
  })).pipe(
    Effect.mapError((cause) =>
      fail(operation, node, `cloning ${primary.name}: ${String((cause as Error)?.message ?? cause)}`, cause)
    )
  )

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
  readonly startTimeout: Duration.Input
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
    // Killed servers leave their shared memory segments: give them back with the files.
    Cleanup.releaseSegments(dir)
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
    if (primary) yield* cloneFrom("setup", node, primary.node, primary.dataDir, dataDir)
    yield* promise("setup", node, async () => {
      if (!primary) await Template.copyDataDir(cluster.template, dataDir)
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
      Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.fail(fail("stop", node, "did not shut down in 30s")) }),
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
    // The node keeps its own settings (port, name); the rest is the primary's.
    const conf = yield* promise("rejoinAsStandby", node, () => FsP.readFile(Path.join(server.dataDir, "postgresql.conf")))
    yield* cloneFrom("rejoinAsStandby", node, current, source.dataDir, server.dataDir)
    yield* promise("rejoinAsStandby", node, async () => {
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

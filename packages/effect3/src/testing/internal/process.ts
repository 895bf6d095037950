/** @internal */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { track, untrack } from "./cleanup.js"
import type { Binaries } from "./binaries.js"
import type { RunAs } from "./runAs.js"

// Spawning commands and servers, and signalling them. Plain Node: cluster.ts
// wraps them in scoped resources.

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

/**
 * Below the kernels' ephemeral ranges (Linux 32768–60999, macOS and Windows
 * 49152–65535): a port the OS hands out for a listener on port 0 is also one
 * it may give an outgoing connection (a pg client's) before the server binds
 * it, and the server then fails with "Address already in use".
 */
const portRange = { from: 20000, to: 32767 }

const canListen = (Net: typeof import("node:net"), port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.unref()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/**
 * A port no one listens on, for a server about to start: a random one in a
 * range no outgoing connection takes, checked by listening on it once.
 * @internal
 */
export const freePort = async (): Promise<number> => {
  const Net = await import("node:net")
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = portRange.from + Math.floor(Math.random() * (portRange.to - portRange.from + 1))
    if (await canListen(Net, port)) return port
  }
  throw new Error(`no free port in ${portRange.from}–${portRange.to} after 50 tries`)
}

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

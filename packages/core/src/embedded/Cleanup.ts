/**
 * The last line of defence of the embedded clusters: if the Node process
 * exits without closing its scope (a crash, process.exit in a test runner),
 * no server outlives it and no cluster directory stays behind; what a process
 * killed by SIGKILL left is swept by the next one.
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { signalServer } from "./Signal.js"

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

/**
 * The prefix of this process's cluster directories (under the temp
 * directory): they are named after the process that owns them.
 *
 * @since 0.1.0
 * @category directories
 */
export const clusterDirPrefix = (pid: number = process.pid): string => `pg-cluster-${pid}-`

/**
 * The pid of the process that owns a cluster directory, from its name, or
 * undefined for any other name.
 *
 * @since 0.1.0
 * @category directories
 */
export const clusterDirOwner = (name: string): number | undefined => {
  const match = /^pg-cluster-(\d+)-/.exec(name)
  return match ? Number(match[1]) : undefined
}

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
 *
 * @since 0.1.0
 * @category directories
 */
export const sweepOrphans = (): void => {
  const root = Os.tmpdir()
  for (const entry of Fs.readdirSync(root)) {
    const owner = clusterDirOwner(entry)
    if (owner === undefined || alive(owner)) continue
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
/**
 * Kills the server whose process group is `pid` if Node exits first.
 *
 * @since 0.1.0
 * @category tracking
 */
export const track = (pid: number): void => {
  hook()
  liveGroups.add(pid)
}
/**
 * Forgets a server that exited or was stopped.
 *
 * @since 0.1.0
 * @category tracking
 */
export const untrack = (pid: number): void => {
  liveGroups.delete(pid)
}

/**
 * Removes a cluster directory if Node exits first.
 *
 * @since 0.1.0
 * @category tracking
 */
export const trackDir = (dir: string): void => {
  hook()
  liveDirs.add(dir)
}
/**
 * Forgets a cluster directory that was removed.
 *
 * @since 0.1.0
 * @category tracking
 */
export const untrackDir = (dir: string): void => {
  liveDirs.delete(dir)
}

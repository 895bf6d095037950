import * as Fs from "node:fs"

/** PIDs of live processes whose command line mentions `directory` (e.g. `postgres -D <dir>/primary`). */
export const postgresProcessesUnder = (directory: string): Array<number> => {
  const found: Array<number> = []
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = Fs.readFileSync(`/proc/${entry}/cmdline`, "utf8")
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // A zombie has exited already; its parent just has not reaped it yet.
      if (/\) Z /.test(stat)) continue
      if (cmdline.includes(directory)) found.push(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return found
}

/** @internal */
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Path from "node:path"

// PostgreSQL refuses to run as root: when the tests run as root, servers run
// as an unprivileged account and what they touch is handed over to it.

/** @internal */
export interface RunAs {
  readonly uid: number
  readonly gid: number
  readonly user: string
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

/** @internal */
export const chownTree = async (path: string, runAs: RunAs): Promise<void> => {
  await FsP.chown(path, runAs.uid, runAs.gid)
  const stat = await FsP.lstat(path)
  if (!stat.isDirectory()) return
  for (const name of await FsP.readdir(path)) await chownTree(Path.join(path, name), runAs)
}

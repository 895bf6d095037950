/** @internal */
import * as FsP from "node:fs/promises"
import * as Path from "node:path"
import Pg from "pg"

// Re-cloning a data directory from a running primary with the low-level
// backup API (pg_backup_start, a file copy, pg_backup_stop): the embedded
// binaries ship neither pg_basebackup nor pg_rewind.

/** Directories whose contents a base backup leaves out (the directories themselves stay). */
const emptied = new Set(["pg_wal", "pg_replslot", "pg_stat_tmp", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans"])

/** Files a base backup leaves out: the running server's own, and recovery markers. */
const skipped = new Set([
  "postmaster.pid",
  "postmaster.opts",
  "backup_label",
  "backup_label.old",
  "tablespace_map",
  "standby.signal",
  "recovery.signal",
  "pg_internal.init"
])

const isGone = (error: unknown) => (error as NodeJS.ErrnoException).code === "ENOENT"

/**
 * Copies a live data directory. Files change or vanish while the server runs:
 * a vanished one is skipped, a torn one is repaired by WAL replay from the
 * backup's start.
 */
const copyLive = async (from: string, to: string, top: boolean): Promise<void> => {
  const stat = await FsP.stat(from)
  await FsP.mkdir(to, { mode: stat.mode & 0o777 })
  let names: Array<string>
  try {
    names = await FsP.readdir(from)
  } catch (error) {
    if (isGone(error)) return
    throw error
  }
  // Entries concurrently: a data directory is about a thousand small files,
  // and one at a time the copy costs a second.
  await Promise.all(names.map(async (name) => {
    if (skipped.has(name)) return
    const source = Path.join(from, name)
    const target = Path.join(to, name)
    try {
      const entry = await FsP.lstat(source)
      if (entry.isDirectory()) {
        if (top && emptied.has(name)) await FsP.mkdir(target, { mode: entry.mode & 0o777 })
        else await copyLive(source, target, false)
      } else if (entry.isFile()) {
        await FsP.copyFile(source, target)
        await FsP.chmod(target, entry.mode & 0o777)
      }
    } catch (error) {
      if (!isGone(error)) throw error
    }
  }))
}

/**
 * Replaces `target` with a base backup of the running primary at
 * `primaryDataDir`, made over `primaryUrl`. The backup session stays open
 * across the copy; `backup_label` (what pg_backup_stop returns) tells the
 * new node where recovery starts.
 * @internal
 */
export const cloneFrom = async (primaryUrl: string, primaryDataDir: string, target: string): Promise<void> => {
  const client = new Pg.Client({ connectionString: primaryUrl, application_name: "pg-cluster-harness" })
  client.on("error", () => {})
  await client.connect()
  try {
    await client.query("SELECT pg_backup_start('pg-cluster-clone', true)")
    await FsP.rm(target, { recursive: true, force: true })
    await copyLive(primaryDataDir, target, true)
    const { rows } = await client.query<{ labelfile: string; spcmapfile: string | null }>(
      "SELECT labelfile, spcmapfile FROM pg_backup_stop(false)"
    )
    await FsP.writeFile(Path.join(target, "backup_label"), rows[0]!.labelfile)
    if (rows[0]!.spcmapfile) await FsP.writeFile(Path.join(target, "tablespace_map"), rows[0]!.spcmapfile)
  } finally {
    await client.end().catch(() => {})
  }
}

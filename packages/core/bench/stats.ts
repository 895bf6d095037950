/**
 * The benchmarks' statistics and verdicts, as pure functions (no servers, no
 * clock): medians with their range over rounds, the order in which systems run
 * in a round, whether a target is met, and whether the host was busy. Shared
 * by both lines' benchmarks (packages/effect3/bench, packages/effect4/bench);
 * `packages/core/test/Bench.test.ts` tests them. Not shipped: the core
 * package's "files" hold dist and src only.
 */

/** The fewest rounds a figure needs before a target is judged on it. */
export const minRoundsForVerdict = 5

/** Median, min and max of per-round values (non-finite values are left out). */
export interface Range {
  readonly median: number
  readonly min: number
  readonly max: number
  /** How many rounds the figures come from. */
  readonly n: number
}

export const median = (values: ReadonlyArray<number>): number => {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (finite.length === 0) return Number.NaN
  const mid = finite.length >> 1
  return finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

/** The range of `values`, or undefined when none is finite. */
export const summarize = (values: ReadonlyArray<number>): Range | undefined => {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return undefined
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

/**
 * `0.62 (0.58–0.66)`: the median, then min–max over the rounds; `unit` follows
 * the median (`0.62× (0.58–0.66)`, `9.9 µs (8.1–11.2)`). A figure from one
 * round says so instead of showing a range it does not have.
 */
export const formatRange = (range: Range | undefined, digits = 2, unit = ""): string => {
  if (range === undefined) return "–"
  const f = (n: number) => n.toFixed(digits)
  return range.n < 2
    ? `${f(range.median)}${unit} (1 round)`
    : `${f(range.median)}${unit} (${f(range.min)}–${f(range.max)})`
}

/**
 * The order of `n` systems in round `round` of workload number `offset`:
 * a rotation that starts at system `(round + offset) mod n`. Over n rounds
 * every system takes every position once, and no system always runs first,
 * last, or right after the same neighbour's position in the round.
 */
export const rotation = (n: number, round: number, offset = 0): Array<number> => {
  if (n <= 0) return []
  const start = (((round + offset) % n) + n) % n
  return Array.from({ length: n }, (_, i) => (start + i) % n)
}

/** `items` in the order `rotation` gives. */
export const rotate = <A>(items: ReadonlyArray<A>, round: number, offset = 0): Array<A> =>
  rotation(items.length, round, offset).map((i) => items[i]!)

export type Direction = "atLeast" | "atMost"

export type Verdict =
  | "met"
  | "not met: median clears, range does not"
  | "missed"
  | "not measured"
  | "not judged: fewer than 5 rounds"

/**
 * A target is met only when its whole range clears the bar: the worst round
 * (the min for "at least", the max for "at most"). When only the median
 * clears it, it is not met and says so; below that, missed.
 */
export const verdict = (
  range: Range | undefined,
  bar: number,
  direction: Direction,
  minRounds = minRoundsForVerdict
): Verdict => {
  if (range === undefined || !Number.isFinite(range.median)) return "not measured"
  if (range.n < minRounds) return "not judged: fewer than 5 rounds"
  const clears = (v: number) => direction === "atLeast" ? v >= bar : v <= bar
  const worst = direction === "atLeast" ? range.min : range.max
  if (clears(worst)) return "met"
  if (clears(range.median)) return "not met: median clears, range does not"
  return "missed"
}

/** How two systems compare round by round (values paired by round). */
export interface Comparison {
  readonly rounds: number
  /** Rounds in which `a` was higher than `b` by more than `tie`. */
  readonly aAhead: number
  /** Rounds in which `b` was higher than `a` by more than `tie`. */
  readonly bAhead: number
}

export const compareRounds = (
  a: ReadonlyMap<number, number>,
  b: ReadonlyMap<number, number>,
  tie = 0.02
): Comparison => {
  let rounds = 0
  let aAhead = 0
  let bAhead = 0
  for (const [round, x] of a) {
    const y = b.get(round)
    if (y === undefined || !Number.isFinite(x) || !Number.isFinite(y)) continue
    rounds++
    if (x > y * (1 + tie)) aAhead++
    else if (y > x * (1 + tie)) bAhead++
  }
  return { rounds, aAhead, bAhead }
}

/**
 * One sentence for a paired comparison: "ahead in every round", "behind in
 * every round", or how the rounds split. Never "ahead" on a median alone.
 */
export const describeComparison = (c: Comparison, a: string, b: string): string => {
  if (c.rounds === 0) return `${a} and ${b} were not measured in the same rounds`
  const ties = c.rounds - c.aAhead - c.bAhead
  if (c.aAhead === c.rounds) return `${a} was ahead of ${b} in every round (${c.rounds})`
  if (c.bAhead === c.rounds) return `${a} was behind ${b} in every round (${c.rounds})`
  if (ties === c.rounds) return `${a} and ${b} were level (within 2 %) in every round (${c.rounds})`
  return `${a} was ahead of ${b} in ${c.aAhead} of ${c.rounds} rounds, behind in ${c.bAhead}` +
    (ties > 0 ? `, level (within 2 %) in ${ties}` : "") + ": no consistent order"
}

/** 1-, 5- and 15-minute load averages before and after one round. */
export interface RoundLoad {
  readonly round: number
  readonly before: readonly [number, number, number]
  readonly after: readonly [number, number, number]
  readonly elapsedMs: number
}

/**
 * Whether the host was busy with other work when the run started: more than
 * half a core in use (measured from /proc/stat just before the cluster
 * starts; where that is not available, a 1-minute load above half the cores).
 * Load averages during the rounds cannot tell: they count the run's own
 * client and server threads, which keep them at 2–3 × the cores here.
 */
export const busyHost = (busyCoresBefore: number | undefined, startLoad: number, cores: number): boolean =>
  busyCoresBefore !== undefined ? busyCoresBefore > 0.5 : startLoad > cores / 2

/** Cores in use between two /proc/stat samples, or undefined where there is no /proc/stat. */
export const busyCores = (before: ReadonlyArray<number>, after: ReadonlyArray<number>, cores: number): number => {
  // cpu  user nice system idle iowait irq softirq steal ...
  const total = (s: ReadonlyArray<number>) => s.reduce((a, b) => a + b, 0)
  const idle = (s: ReadonlyArray<number>) => (s[3] ?? 0) + (s[4] ?? 0)
  const elapsed = total(after) - total(before)
  return elapsed <= 0 ? 0 : cores * (1 - (idle(after) - idle(before)) / elapsed)
}

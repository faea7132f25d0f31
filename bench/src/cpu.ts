import { readdir, readFile } from 'node:fs/promises'

/** Linux's USER_HZ: /proc reports CPU time in these ticks on every common platform. */
const TICKS_PER_SECOND = 100

/** CPU used during a window, in cores (1.0 = one core busy the whole time). */
export interface CpuUse {
  /** The bench's PostgreSQL: its postmaster and every process it started (backends, background workers). */
  postgres: number
  /** The processes under test: workers, the api. */
  services: number
  /** The bench process itself (the load generator, when it is one). */
  bench: number
  /** The whole machine, from /proc/stat; out of os.cpus().length. */
  machine: number
  /**
   * The machine less the three above: anything else that ran meanwhile (another checkout's tests, the
   * kernel's own threads). Much above zero means the figure was taken on a busy machine.
   */
  other: number
}

interface Snapshot {
  at: number
  perPid: Map<number, { ppid: number; ticks: number }>
  machineBusy: number
}

/**
 * Where the CPU went during a measure, from /proc (no pidstat needed): on a 2-core machine the
 * database and the workers compete for the same cores, so this says which side a throughput figure
 * was limited by. Backends that exit during the window take their CPU with them; the bench's
 * connections live for the whole window, so this undercounts little.
 */
export async function startCpuMeter(
  postmasterPid: number | undefined,
  servicePids: () => readonly number[],
): Promise<() => Promise<CpuUse | undefined>> {
  const before = await snapshot()
  return async () => {
    const after = await snapshot()
    if (!before || !after) return undefined
    const seconds = (after.at - before.at) / 1000
    const services = new Set(servicePids())
    const use = { postgres: 0, services: 0, bench: 0 }
    for (const [pid, { ppid, ticks }] of after.perPid) {
      const used = ticks - (before.perPid.get(pid)?.ticks ?? 0)
      // Only our server's processes: other checkouts' test clusters run `postgres` too.
      if (pid === postmasterPid || ppid === postmasterPid) use.postgres += used
      else if (services.has(pid) || services.has(ppid)) use.services += used
      else if (pid === process.pid) use.bench += used
    }
    const cores = (ticks: number) => round(ticks / TICKS_PER_SECOND / seconds)
    const machine = after.machineBusy - before.machineBusy
    return {
      postgres: cores(use.postgres),
      services: cores(use.services),
      bench: cores(use.bench),
      machine: cores(machine),
      other: cores(Math.max(0, machine - use.postgres - use.services - use.bench)),
    }
  }
}

async function snapshot(): Promise<Snapshot | undefined> {
  if (process.platform !== 'linux') return undefined
  const at = performance.now()
  const perPid = new Map<number, { ppid: number; ticks: number }>()
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      // comm may contain spaces and parentheses: the fields after it start at the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // ppid is field 4 of the whole line; utime and stime are 14 and 15 (1, 11 and 12 after comm).
      perPid.set(pid, { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) })
    } catch {
      // exited between readdir and readFile
    }
  }
  const [cpuLine] = (await readFile('/proc/stat', 'utf8')).split('\n')
  const [, ...counters] = (cpuLine ?? '').trim().split(/\s+/).map(Number)
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  const busy = counters.slice(0, 8).reduce((sum, v, i) => (i === 3 || i === 4 ? sum : sum + v), 0)
  return { at, perPid, machineBusy: busy }
}

function round(value: number): number {
  return Math.round(value * 100) / 100
}

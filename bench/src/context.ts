import type { CpuUse } from './cpu.js'
import type { BenchServer } from './server.js'
import type { Sizes } from './settings.js'

/** What every phase gets: the server, the sizes of this run, and a progress line printer. */
export interface BenchContext {
  server: BenchServer
  sizes: Sizes
  log(message: string): void
  /** Starts measuring CPU by group (our server, `servicePids` and their children, the bench); the result ends it. */
  startCpuMeter(servicePids: () => readonly number[]): Promise<() => Promise<CpuUse | undefined>>
}

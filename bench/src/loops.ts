import { nowMs } from './clock.js'

export interface LoopsResult {
  calls: number
  ms: number
  /** Each call's duration, ms. */
  latencies: number[]
}

/**
 * `inFlight` loops, each making one call after the other for `seconds` (or `calls` in all, when
 * given). Every call started is awaited, so the count is exactly what the system acknowledged.
 */
export async function runLoops(
  { inFlight, seconds, calls }: { inFlight: number; seconds?: number; calls?: number },
  call: (index: number) => Promise<void>,
): Promise<LoopsResult> {
  const started = nowMs()
  const deadline = seconds === undefined ? Infinity : started + seconds * 1000
  const latencies: number[] = []
  let issued = 0
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (nowMs() < deadline && (calls === undefined || issued < calls)) {
        const index = issued++
        const t = nowMs()
        await call(index)
        latencies.push(nowMs() - t)
      }
    }),
  )
  return { calls: latencies.length, ms: nowMs() - started, latencies }
}

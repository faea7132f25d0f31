interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * Makes this process's wall clock read `offsetMs` off (Date.now() and `new Date()`), as a host whose
 * clock drifted would, until the test ends. Timers and performance.now() are not touched: they
 * measure durations, which a skewed clock does not change.
 */
export function skewClock(t: Teardown, offsetMs: number): void {
  const RealDate = globalThis.Date
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + offsetMs)
      else super(...(args as [string]))
    }
    static override now(): number {
      return RealDate.now() + offsetMs
    }
  }
  globalThis.Date = SkewedDate as DateConstructor
  t.teardown(() => {
    globalThis.Date = RealDate
  })
}

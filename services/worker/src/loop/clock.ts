/**
 * The database's time as this process sees it. Every due time the worker acts on (a delayed order,
 * a retry's backoff, a lease's expiry) is the database's, and a host clock a minute off would
 * otherwise start timers a minute early or late, or re-arm one for a time that reads as past on
 * its own clock, many times a second. The offset between the clocks is measured with each
 * promotion (promoter.ts), from a statement that reads the database's clock.
 */
export class DatabaseClock {
  private offsetMs = 0

  /** The database read `databaseNow` between `sentAt` and `answeredAt` (Date.now() around the call). */
  observe(databaseNow: Date, sentAt: number, answeredAt: number): void {
    this.offsetMs = databaseNow.getTime() - (sentAt + answeredAt) / 2
  }

  /** The database's time now, in ms since the epoch. */
  now(): number {
    return Date.now() + this.offsetMs
  }

  /** How long from now until `at`, a time on the database's clock (negative when past). */
  msUntil(at: Date): number {
    return at.getTime() - this.now()
  }

  /** How long an order has waited since `dueAt`, when it came due. */
  waitSince(dueAt: Date): number {
    return Math.max(0, -this.msUntil(dueAt))
  }
}

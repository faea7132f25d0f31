import { setTimeout as sleep } from 'node:timers/promises'

export interface WaitForOptions {
  /** What the wait is for, as the error says when it never comes: "order 7 completed". */
  message: string
  /**
   * How long to wait before failing. Generous by default: the machine running the suite may be
   * loaded, and a wait for a condition costs nothing when the condition comes early.
   */
  timeoutMs?: number
  /** The pause between two checks of the condition. */
  intervalMs?: number
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>

/**
 * For tests: checks `condition` until it returns a truthy value, and returns that value. Throws
 * `timed out after <timeoutMs> ms waiting for <message>` if it has not by then, so a test waits for
 * what it means (a row visible, a log line written, a batch started) instead of sleeping for a time
 * that is too long on a quiet machine and too short on a busy one. An error the condition throws
 * is not retried: it fails the wait at once.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { message, timeoutMs = 10_000, intervalMs = 10 }: WaitForOptions,
): Promise<Truthy<T>> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await condition()
    if (value) return value as Truthy<T>
    if (performance.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`)
    await sleep(intervalMs)
  }
}

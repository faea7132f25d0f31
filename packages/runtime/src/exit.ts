/**
 * Ends a process that cannot recover in place (a connection gone silent): runs `stop`, then exits
 * 1, and exits 1 after `boundMs` whatever `stop` is still waiting for. Crash-only is safe for both
 * services: every guarantee holds across a killed process, and its orchestrator starts a new one.
 */
export function stopThenExit(stop: () => Promise<unknown>, boundMs: number): void {
  setTimeout(() => process.exit(1), boundMs)
  void stop().finally(() => process.exit(1))
}

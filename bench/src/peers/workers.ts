import { type Child, startNode } from '../processes.js'
import type { ChildMessage } from '../workers/protocol.js'
import type { Peer } from './peer.js'

export interface PeerWorkers {
  children: Child[]
  /** Jobs the handlers have seen so far, from the scripts' progress messages. */
  handled(): number
  /** Asks every script for its report: every key it handled and its first and last handler return. */
  reports(): Promise<Extract<ChildMessage, { type: 'report' }>[]>
}

/** Starts `count` processes of the peer's worker script on `url`. */
export function startPeerWorkers(
  peer: Peer,
  url: string,
  count: number,
  env: Record<string, string> = {},
): PeerWorkers {
  const progress = new Array<number>(count).fill(0)
  const children = Array.from({ length: count }, (_, i) => {
    const child = startNode(`${peer.system}-${i + 1}`, peer.script, { DATABASE_URL: url, ...env })
    child.onMessage((message) => {
      if (message.type === 'progress') progress[i] = message.handled
    })
    return child
  })
  return {
    children,
    handled: () => progress.reduce((a, b) => a + b, 0),
    async reports() {
      return Promise.all(
        children.map((child) => {
          const report = child.waitFor('report', 30_000)
          child.send({ type: 'report' })
          return report
        }),
      )
    },
  }
}

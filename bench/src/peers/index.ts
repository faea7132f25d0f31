import { openGraphile } from './graphile.js'
import type { Peer } from './peer.js'
import { openPgBoss } from './pg-boss.js'

export type PeerName = Peer['system']

/** Every peer, in the order the report's columns show them. */
export const PEERS: Record<PeerName, (url: string) => Promise<Peer>> = {
  'pg-boss': openPgBoss,
  'graphile-worker': openGraphile,
}
export const PEER_NAMES = Object.keys(PEERS) as PeerName[]

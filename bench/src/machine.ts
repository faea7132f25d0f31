import { readFile } from 'node:fs/promises'
import os from 'node:os'
import type { MachineInfo } from './results.js'
import type { ServerInfo } from './server.js'

/** The machine, the server and the peers' versions, as the report states them. */
export async function describeMachine(server: ServerInfo, otherCoresAtStart: number | undefined): Promise<MachineInfo> {
  const cpus = os.cpus()
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? '?',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    otherCoresAtStart,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: server.version,
    postgresSettings: server.settings,
    peers: {
      'pg-boss': await packageVersion('pg-boss'),
      'graphile-worker': await packageVersion('graphile-worker'),
      autocannon: await packageVersion('autocannon'),
    },
  }
}

/** The installed version, read from the bench package's node_modules (their exports hide package.json). */
async function packageVersion(name: string): Promise<string> {
  try {
    const file = new URL(`../node_modules/${name}/package.json`, import.meta.url)
    return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version
  } catch {
    return '?'
  }
}

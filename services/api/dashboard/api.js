// Data calls to the api, with the bearer token when one is stored. The token lives in localStorage
// because the page's files are served without it: only these calls carry it.

const TOKEN_KEY = 'postgres-queue.apiToken'

/** The api answered 401: the page needs (another) token. */
export class TokenRequired extends Error {
  constructor() {
    super('the api requires a token')
    this.name = 'TokenRequired'
  }
}

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (value) => localStorage.setItem(TOKEN_KEY, value),
}

/** The server's clock minus the browser's, from the Date header: throughput buckets are server time. */
export let serverClockOffsetMs = 0

/** JSON from `path` (relative to the page); throws TokenRequired on 401, an Error with the api's message otherwise. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = {}
  const stored = token.get()
  if (stored) headers.authorization = `Bearer ${stored}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const date = Date.parse(response.headers.get('date') ?? '')
  if (!Number.isNaN(date)) serverClockOffsetMs = date - Date.now()
  if (response.status === 401) throw new TokenRequired()
  const payload = await response.json().catch(() => undefined)
  if (!response.ok) {
    throw Object.assign(new Error(payload?.message ?? `${method} ${path} answered ${response.status}`), {
      status: response.status,
    })
  }
  return payload
}

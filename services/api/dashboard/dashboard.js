// The dashboard: polls the api every POLL_MS and renders what it says. Everything from the api is
// written with textContent, never as HTML: an order's error text is whatever a processor threw.

import { api, serverClockOffsetMs, TokenRequired, token } from './api.js'
import { drawChart } from './chart.js'
import { formatAgo, formatCount, formatSeconds, formatTime } from './format.js'

const POLL_MS = 2000
/** The depth chart is sampled by this page, so it shows what happened since the page opened. */
const DEPTH_WINDOW_MS = 10 * 60_000
const THROUGHPUT_MINUTES = 15
const FAILED_SHOWN = 20
const PENDING_SHOWN = 20

const $ = (id) => document.getElementById(id)
const serverNow = () => Date.now() + serverClockOffsetMs

const depthSamples = []
let timer
let polling = false
/** Set when a refresh is asked for while one is in flight: its data may predate an action. */
let pollAgain = false

function cell(text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  return td
}

function setText(id, text) {
  const node = $(id)
  if (node.textContent !== text) node.textContent = text
}

function renderStats(stats) {
  for (const status of ['scheduled', 'waiting', 'pending', 'processing', 'failed', 'cancelled']) {
    setText(`count-${status}`, formatCount(stats.counts[status]))
  }
  setText('count-completed', `≈ ${formatCount(stats.counts.completed)}`)
  $('count-failed').classList.toggle('nonzero', stats.counts.failed > 0)
  setText('lag', formatSeconds(stats.lagSeconds))
  setText('completed-1m', formatCount(stats.completedLastMinute))
  setText('completed-5m', formatCount(stats.completedLast5Minutes))
  setText('failed-5m', formatCount(stats.failedLast5Minutes))
  renderWorkers(stats.workers)
  renderDepth(stats.counts)
  renderBlockedKeys(stats.blockedKeys)
}

/** The keys waiting longest, and what holds each: a dead letter can be skipped from here. */
function renderBlockedKeys(blocked) {
  const rows = blocked.oldest.map((line) => {
    const tr = document.createElement('tr')
    tr.dataset.orderingKey = line.key
    const action = document.createElement('td')
    const head = line.head
    if (head?.status === 'failed') {
      action.append(actionButton('Skip', `Skip order ${head.id} of key ${line.key}`, (button) => skip(head.id, button)))
    }
    tr.append(
      cell(line.key),
      cell(head ? `order ${head.id}, ${head.status}` : '–'),
      cell(formatCount(line.waiting), 'number'),
      cell(formatTime(line.waitingSince)),
      action,
    )
    return tr
  })
  $('blocked-keys').replaceChildren(...rows)
  $('blocked-empty').hidden = rows.length > 0
  setText(
    'blocked-summary',
    blocked.count === 0
      ? ''
      : `${formatCount(blocked.count)} key${blocked.count === 1 ? '' : 's'}, ${formatCount(blocked.onFailed)} on a failed order`,
  )
}

function renderWorkers(workers) {
  const now = serverNow()
  const rows = workers.map((w) => {
    const tr = document.createElement('tr')
    tr.dataset.workerId = w.id
    const th = document.createElement('th')
    th.scope = 'row'
    th.textContent = w.id
    const state = document.createElement('span')
    state.className = `state ${w.state}`
    state.textContent = w.state
    const stateCell = document.createElement('td')
    stateCell.append(state)
    tr.append(
      th,
      stateCell,
      cell(w.host),
      cell(String(w.pid), 'number'),
      cell(w.mode),
      cell(formatTime(w.startedAt)),
      cell(formatAgo(w.lastSeenAt, now)),
      cell(formatCount(w.processed), 'number'),
      cell(formatCount(w.failed), 'number'),
    )
    return tr
  })
  $('workers').replaceChildren(...rows)
  $('workers-empty').hidden = workers.length > 0
  const alive = workers.filter((w) => w.state === 'alive').length
  setText('workers-summary', `${alive} alive of ${workers.length}`)
}

function renderDepth(counts) {
  const now = serverNow()
  depthSamples.push([now, counts.pending, counts.processing, counts.failed])
  while (depthSamples.length > 0 && depthSamples[0][0] < now - DEPTH_WINDOW_MS) depthSamples.shift()
  // The window grows from the first sample to its full width, so a fresh page has a chart to show.
  const windowMs = Math.min(DEPTH_WINDOW_MS, Math.max(60_000, now - depthSamples[0][0]))
  const series = ['pending', 'processing', 'failed'].map((className, i) => ({
    className,
    points: depthSamples.map((sample) => [sample[0], sample[i + 1]]),
  }))
  const xLabels = [`−${Math.round(windowMs / 60_000)} min`, 'now']
  drawChart($('depth-chart'), { series, from: now - windowMs, to: now, xLabels })
  $('depth-chart').setAttribute(
    'aria-description',
    `Now ${counts.pending} pending, ${counts.processing} processing, ${counts.failed} failed`,
  )
}

function renderThroughput({ bucketSeconds, points }) {
  const now = serverNow()
  const bucketMs = bucketSeconds * 1000
  const from = now - THROUGHPUT_MINUTES * 60_000
  // The api leaves out buckets without work: those are zeros, not gaps to draw across.
  const byBucket = new Map(points.map((p) => [Date.parse(p.at), p]))
  const completed = []
  const failed = []
  // Up to the last complete bucket: the current one fills as heartbeats land, and drawn it would
  // always dip towards zero at "now".
  for (let at = Math.floor(from / bucketMs) * bucketMs; at + bucketMs <= now; at += bucketMs) {
    const point = byBucket.get(at)
    completed.push([at, point?.completed ?? 0])
    failed.push([at, point?.failed ?? 0])
  }
  // Failures first, so completions draw over them where both are zero.
  const series = [
    { className: 'failed', points: failed },
    { className: 'completed', points: completed },
  ]
  drawChart($('throughput-chart'), { series, from, to: now, xLabels: [`−${THROUGHPUT_MINUTES} min`, 'now'] })
  const total = points.reduce((sum, p) => sum + p.completed, 0)
  $('throughput-chart').setAttribute('aria-description', `${total} completed in the last ${THROUGHPUT_MINUTES} minutes`)
}

function renderFailed(page, failedCount) {
  const rows = page.orders.map((order) => {
    const tr = document.createElement('tr')
    tr.dataset.orderId = String(order.id)
    const button = document.createElement('button')
    button.type = 'button'
    button.textContent = 'Redrive'
    button.setAttribute('aria-label', `Redrive order ${order.id}`)
    button.addEventListener('click', () => redrive(order.id, button))
    const action = document.createElement('td')
    action.append(button)
    tr.append(
      cell(String(order.id), 'number'),
      cell(order.customerId),
      cell(`${order.attempts} / ${order.maxAttempts}`, 'number'),
      cell(order.lastError ?? '', 'error-text'),
      cell(formatTime(order.updatedAt)),
      action,
    )
    return tr
  })
  $('failed-orders').replaceChildren(...rows)
  $('failed-empty').hidden = rows.length > 0
  $('redrive-all').disabled = failedCount === 0
  setText('failed-summary', failedCount > rows.length ? `newest ${rows.length} of ${formatCount(failedCount)}` : '')
}

function actionButton(label, ariaLabel, onClick) {
  const button = document.createElement('button')
  button.type = 'button'
  button.textContent = label
  button.setAttribute('aria-label', ariaLabel)
  button.addEventListener('click', () => onClick(button))
  return button
}

function renderPending(page) {
  const rows = page.orders.map((order) => {
    const tr = document.createElement('tr')
    tr.dataset.orderId = String(order.id)
    const action = document.createElement('td')
    action.append(actionButton('Cancel', `Cancel order ${order.id}`, (button) => cancel(order.id, button)))
    tr.append(
      cell(String(order.id), 'number'),
      cell(order.customerId),
      cell(String(order.priority), 'number'),
      cell(`${(order.totalCents / 100).toFixed(2)} ${order.currency}`, 'number'),
      cell(formatTime(order.runAt)),
      action,
    )
    return tr
  })
  $('pending-orders').replaceChildren(...rows)
  $('pending-empty').hidden = rows.length > 0
}

async function redrive(id, button) {
  button.disabled = true
  await act(async () => {
    await api(`orders/${id}/retry`, { method: 'POST' })
    return `Order ${id} sent back to pending.`
  })
}

async function skip(id, button) {
  button.disabled = true
  await act(async () => {
    await api(`orders/${id}/skip`, { method: 'POST' })
    return `Order ${id} skipped: its key goes on without it.`
  }, 'skip-status')
}

async function cancel(id, button) {
  button.disabled = true
  await act(async () => {
    await api(`orders/${id}/cancel`, { method: 'POST' })
    return `Order ${id} cancelled.`
  }, 'cancel-status')
}

/** Shows one order by id, with what can be done to it: cancel while it waits, redrive once failed. */
async function find(id) {
  setText('find-status', '')
  $('found-order').hidden = true
  $('found-actions').replaceChildren()
  let order
  try {
    order = await api(`orders/${id}`)
  } catch (err) {
    if (err instanceof TokenRequired) return askForToken('The api refused the stored token.')
    return setText('find-status', err.status === 404 ? `No order ${id}.` : `Could not read order ${id}: ${err.message}`)
  }
  const fields = [
    ['Status', order.status],
    ['Customer', order.customerId],
    ['Total', `${(order.totalCents / 100).toFixed(2)} ${order.currency}`],
    ['Priority', String(order.priority)],
    ['Ordering key', order.orderingKey ?? '–'],
    ['Attempts', `${order.attempts} / ${order.maxAttempts}`],
    ['Due', formatTime(order.runAt)],
    ['Created', formatTime(order.createdAt)],
    ['Completed', order.completedAt ? `${formatTime(order.completedAt)} by ${order.completedBy}` : '–'],
    ['Last error', order.lastError ?? '–'],
  ]
  $('found-order').replaceChildren(
    ...fields.flatMap(([term, value]) => {
      const dt = document.createElement('dt')
      dt.textContent = term
      const dd = document.createElement('dd')
      dd.textContent = value
      dd.dataset.field = term.toLowerCase()
      return [dt, dd]
    }),
  )
  $('found-order').hidden = false
  const again = () => find(order.id)
  if (['scheduled', 'waiting', 'pending'].includes(order.status)) {
    $('found-actions').append(
      actionButton('Cancel', `Cancel order ${order.id}`, async (button) => {
        await cancel(order.id, button)
        await again()
      }),
    )
  }
  if (order.status === 'failed') {
    $('found-actions').append(
      actionButton('Redrive', `Redrive order ${order.id}`, async (button) => {
        await redrive(order.id, button)
        await again()
      }),
    )
    if (order.orderingKey !== null && order.skippedAt === null) {
      $('found-actions').append(
        actionButton('Skip', `Skip order ${order.id}`, async (button) => {
          await skip(order.id, button)
          await again()
        }),
      )
    }
  }
}

async function redriveAll() {
  $('redrive-all').disabled = true
  await act(async () => {
    const { retried } = await api('orders/retry', { method: 'POST', body: {} })
    return `${formatCount(retried)} failed order${retried === 1 ? '' : 's'} sent back to pending.`
  })
}

/** Runs an action, says how it went (in `statusId`), and refreshes at once rather than at the next tick. */
async function act(action, statusId = 'redrive-status') {
  try {
    setText(statusId, await action())
  } catch (err) {
    if (err instanceof TokenRequired) return askForToken('The api refused the stored token.')
    setText(statusId, err.message)
  }
  await poll()
}

async function poll() {
  clearTimeout(timer)
  if (polling) {
    pollAgain = true
    return
  }
  polling = true
  try {
    const [stats, throughput, failed, pending] = await Promise.all([
      api('queue/stats'),
      api(`queue/throughput?minutes=${THROUGHPUT_MINUTES}`),
      api(`orders?status=failed&order=desc&limit=${FAILED_SHOWN}`),
      api(`orders?status=pending&limit=${PENDING_SHOWN}`),
    ])
    renderStats(stats)
    renderThroughput(throughput)
    renderFailed(failed, stats.counts.failed)
    renderPending(pending)
    setText(
      'pending-summary',
      stats.counts.pending > pending.orders.length
        ? `oldest ${pending.orders.length} of ${formatCount(stats.counts.pending)}`
        : 'oldest first',
    )
    showConnection(`Updated ${new Date().toLocaleTimeString()}`, false)
    timer = setTimeout(poll, POLL_MS)
  } catch (err) {
    if (err instanceof TokenRequired) {
      askForToken(token.get() ? 'The api refused the stored token.' : undefined)
    } else {
      showConnection(`Cannot read the queue: ${err.message}. Retrying…`, true)
      timer = setTimeout(poll, POLL_MS)
    }
  } finally {
    polling = false
  }
  if (pollAgain) {
    pollAgain = false
    await poll()
  }
}

function showConnection(message, isError) {
  setText('connection', message)
  $('connection').classList.toggle('error', isError)
}

/** Polling stops until a token is given: every call would only be refused again. */
function askForToken(reason) {
  clearTimeout(timer)
  showConnection('Waiting for an API token', true)
  // Dismissing the dialog (Escape) leaves this button to bring it back.
  $('change-token').hidden = false
  if (reason) setText('token-reason', reason)
  const dialog = $('token-dialog')
  if (!dialog.open) dialog.showModal()
  $('token-input').focus()
}

$('token-form').addEventListener('submit', () => {
  // method="dialog" closes the dialog on submit; the token applies from the next call.
  token.set($('token-input').value.trim())
  $('token-input').value = ''
  $('change-token').hidden = false
  void poll()
})
$('change-token').addEventListener('click', () => askForToken('Enter another token.'))
$('change-token').hidden = !token.get()
$('redrive-all').addEventListener('click', redriveAll)
$('find-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void find($('find-id').value.trim())
})

void poll()

import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createSchedule } from '../src/loop/schedule.js'
import { capturingLogger } from './helpers.js'

async function until(condition: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

t.test('ticks never overlap, even after a second start; a skipped tick is said at debug; stop ends them', async (t) => {
  const { log, lines } = capturingLogger()
  let ticks = 0
  let running = 0
  let mostRunning = 0
  let release = () => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  const schedule = createSchedule({
    cron: '* * * * * *',
    name: 'test',
    jitterMs: 0,
    log,
    async onTick() {
      ticks += 1
      mostRunning = Math.max(mostRunning, ++running)
      if (ticks === 1) await held
      running -= 1
    },
  })
  t.teardown(() => schedule.stop())
  schedule.start()
  schedule.start() // a second task would tick beside the first, overlapping it
  const fromCron = () => lines.filter((line) => line.source === 'node-cron')
  t.ok(
    await until(() => fromCron().some((line) => /overlap/i.test(String(line.msg)))),
    'a tick was skipped while the first was held',
  )
  release()
  t.ok(await until(() => ticks >= 2 && running === 0), 'ticks resume once it ends')
  t.equal(mostRunning, 1, 'never two at once')
  t.notOk(
    fromCron().some((line) => Number(line.level) >= 40),
    'the skip was said below warn',
  )

  await schedule.stop()
  const atStop = ticks
  // Nothing to wait for here but time: two intervals with no tick.
  await sleep(2100)
  t.equal(ticks, atStop, 'no tick after stop')
})

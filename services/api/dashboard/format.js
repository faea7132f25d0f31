// How numbers and times read on the page.

const integer = new Intl.NumberFormat()

export const formatCount = (n) => integer.format(n)

/** 0 s, 12.3 s, 4 min 3 s, 2 h 5 min. */
export function formatSeconds(seconds) {
  if (seconds < 60) return `${seconds < 10 && seconds > 0 ? seconds.toFixed(1) : Math.round(seconds)} s`
  const s = Math.round(seconds)
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** "4 s ago", from an ISO instant and the server's clock. */
export function formatAgo(iso, nowMs) {
  return `${formatSeconds(Math.max(0, (nowMs - Date.parse(iso)) / 1000))} ago`
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' })

export const formatTime = (iso) => dateTime.format(new Date(iso))

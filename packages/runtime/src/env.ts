import type { Static, TObject, TSchema } from 'typebox'
import Value from 'typebox/value'

/** Thrown when the environment does not satisfy a service's schema; names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`)
  }
}

/**
 * Reads the variables a TypeBox schema declares from `env`: empty means unset, defaults fill the
 * gaps, strings are converted to the declared types, and anything that still does not match is
 * reported by name in one ConfigError. Unknown variables are ignored (the environment is shared).
 */
export function parseEnv<T extends TObject>(schema: T, env: Readonly<Record<string, string | undefined>>): Static<T> {
  const picked: Record<string, string> = {}
  for (const name of Object.keys(schema.properties)) {
    const value = env[name]
    if (value !== undefined && value !== '') picked[name] = value
  }
  // Default and Convert work in place: convert a copy, so `picked` keeps what the environment said.
  const value = Value.Convert(schema, Value.Default(schema, { ...picked }))
  if (Value.Check(schema, value)) return value

  // Checked one variable at a time: an error list for the whole object is capped, and one union
  // (LOG_LEVEL's literals) could use it all up and hide the next bad variable.
  const problems: string[] = []
  for (const [name, property] of Object.entries(schema.properties) as [string, TSchema][]) {
    const converted = (value as Record<string, unknown>)[name]
    if (converted === undefined) {
      if (schema.required?.includes(name)) problems.push(`${name} is required: ${describe(schema, name)}`)
    } else if (!Value.Check(property, converted)) {
      const [first] = Value.Errors(property, converted)
      const shown = JSON.stringify(redactCredentials(picked[name] ?? ''))
      problems.push(`${name}=${shown} ${expectation(schema, name, first?.message ?? 'is invalid')}`)
    }
  }
  throw new ConfigError(problems)
}

function describe(schema: TObject, name: string): string {
  const property = schema.properties[name] as { description?: string } | undefined
  return property?.description ?? 'no description'
}

/** A readable expectation; for a union of literals, the allowed values. */
function expectation(schema: TObject, name: string, message: string): string {
  const property = schema.properties[name] as { anyOf?: { const?: unknown }[]; description?: string }
  const allowed = property.anyOf?.map((member) => member.const).filter((v) => v !== undefined)
  const reason = allowed?.length ? `must be one of ${allowed.join(', ')}` : message
  return property.description ? `${reason} (${property.description})` : reason
}

/** A connection URL's password never reaches a log: `postgres://user:secret@host` -> `postgres://user:***@host`. */
function redactCredentials(value: string): string {
  return value.replace(/(\/\/[^/:@\s]*:)[^@\s]*@/g, '$1***@')
}

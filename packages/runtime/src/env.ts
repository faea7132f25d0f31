import type { Static, TObject } from 'typebox'
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
  const value = Value.Convert(schema, Value.Default(schema, picked))
  if (Value.Check(schema, value)) return value

  const problems = new Map<string, string>()
  for (const error of Value.Errors(schema, value)) {
    if (error.keyword === 'required') {
      for (const name of (error.params as { requiredProperties: string[] }).requiredProperties) {
        problems.set(name, `${name} is required: ${describe(schema, name)}`)
      }
      continue
    }
    const name = error.instancePath.split('/')[1]
    if (name === undefined || problems.has(name)) continue
    problems.set(name, `${name}=${JSON.stringify(picked[name])} ${expectation(schema, name, error.message)}`)
  }
  throw new ConfigError([...problems.values()])
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

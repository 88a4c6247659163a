/**
 * One JSON Schema validator (ajv) for the deployment files' tests: a compiled schema as a function from
 * a document to its errors, each "path: message", so a failing assertion shows what is wrong where.
 */
import { Ajv } from 'ajv'

export type Obj = Record<string, unknown>

export function compileSchema (schema: Obj): (doc: unknown) => string[] {
  // draft-07 is ajv's own dialect; it knows the meta-schema by its http:// id only, so the https://
  // spelling in the compose schema's $schema is dropped rather than fetched
  const { $schema, ...rest } = schema
  if ($schema !== undefined && !/json-schema\.org\/draft-07\/schema/.test(String($schema))) throw new Error(`not a draft-07 schema: ${String($schema)}`)
  // strict off: the vendored schema uses annotations ajv does not know (e.g. "deprecated")
  const check = new Ajv({ allErrors: true, strict: false }).compile(rest)
  // an unknown field is named (ajv keeps it in params, not in the message)
  const named = (params: Record<string, unknown>): string => typeof params['additionalProperty'] === 'string' ? `: ${params['additionalProperty']}` : ''
  return (doc) => check(doc) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}${named(e.params)}`)
}

/**
 * config/kubernetes/: every manifest validated against the Kubernetes API's schemas twice: with
 * kubernetes-models (types, required fields, enums) and with a closed JSON Schema of the same objects
 * (test/fixtures/kubernetes-schema, field names from the official client generated from the Kubernetes
 * OpenAPI spec), so a misspelt field (runAsNonroot) is an error and not a setting silently dropped.
 * The kustomization names every file and generates the ConfigMap; what running claylb needs holds
 * across the files: probes on the admin port of the config, a preStop drain that fits the grace
 * period, every secret from a Secret, selectors that match, the HPA alone owning the replica count,
 * the admin port behind a token and a NetworkPolicy, a config claylb itself accepts.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments, parse } from 'yaml'
import { ConfigMap, Service } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import { ROOT } from '../helpers/claylb.js'
import { configProblems } from '../helpers/config.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { compileSchema, type Obj } from './schema.js'

const DIR = join(ROOT, 'config/kubernetes')
type Doc = { apiVersion: string, kind: string, metadata: { name: string }, [k: string]: unknown }

const MODELS: Record<string, new (data: never) => { validate: () => void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
}

/** one closed validator per kind: every object of the schema rejects a field it does not define */
const strict = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/kubernetes-schema/kubernetes-strict.json'), 'utf8')) as { roots: Record<string, string>, definitions: Obj }
const STRICT = new Map(Object.entries(strict.roots).map(([kind, def]) => [kind, compileSchema({ $schema: 'http://json-schema.org/draft-07/schema#', definitions: strict.definitions, $ref: `#/definitions/${def}` })]))

/** The schema errors of one object, or why it cannot be checked; '' when it is valid. */
function schemaError (doc: Doc): string {
  const kind = `${doc.apiVersion}/${doc.kind}`
  const Model = MODELS[kind]
  const closed = STRICT.get(kind)
  if (Model === undefined || closed === undefined) return `no schema for ${doc.apiVersion} ${doc.kind}`
  try {
    new Model(doc as never).validate()
  } catch (err) {
    return (err as Error).message
  }
  return closed(doc).join('\n')
}

interface Kustomization { apiVersion: string, kind: string, resources: string[], configMapGenerator: Array<{ name: string, files: string[], options?: { labels?: Record<string, string> } }> }
const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as Kustomization
/** the ConfigMaps kustomize generates (before the hash suffix it adds to the name and its references) */
const generated: Doc[] = (kustomization.configMapGenerator ?? []).map((g) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: g.name, ...(g.options?.labels ? { labels: g.options.labels } : {}) },
  data: Object.fromEntries(g.files.map((f) => [f, readFileSync(join(DIR, f), 'utf8')])),
}))
const docs: Doc[] = [...kustomization.resources.flatMap((f) => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Doc)), ...generated]
const find = (kind: string): Doc => {
  const found = docs.filter((d) => d.kind === kind)
  if (found.length !== 1) throw new Error(`${found.length} ${kind} objects in config/kubernetes`)
  return found[0]!
}
/** the secrets the Deployment takes from Secrets, as the pod's environment would hold them */
const SECRET_ENV = { SESSION_SECRET: 'x'.repeat(32), CLAYLB_ADMIN_TOKEN: 'admin-token', REDIS_PASSWORD: 'redis-password' }

t.test('kustomization.yaml lists every manifest in the folder and generates the ConfigMap', async (t) => {
  t.equal(kustomization.apiVersion, 'kustomize.config.k8s.io/v1beta1')
  t.equal(kustomization.kind, 'Kustomization')
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()
  t.same([...kustomization.resources, ...kustomization.configMapGenerator.flatMap((g) => g.files)].sort(), files)
  t.same(kustomization.configMapGenerator.map((g) => g.name), ['claylb-config'], 'a configMapGenerator: its hash suffix rolls the pods on a config change')
  t.notOk(kustomization.resources.some((f) => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).some((d) => (d.toJS() as Doc).kind === 'ConfigMap')), 'no plain ConfigMap beside it')
})

t.test('every manifest is valid against the Kubernetes schema', async (t) => {
  t.same(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Service'])
  for (const d of docs) t.equal(schemaError(d), '', `${d.kind} ${d.metadata.name}`)
})

t.test('the schema check can fail: wrong types, missing fields, and every misspelt field', async (t) => {
  const deployment = structuredClone(find('Deployment')) as Doc & { spec: Record<string, unknown> }
  t.match(schemaError({ ...deployment, spec: { ...deployment.spec, replicas: 'three' } }), /replicas/)
  t.match(schemaError({ ...deployment, spec: { ...deployment.spec, selector: undefined } }), /selector/)
  t.match(schemaError({ ...find('Service'), spec: { ports: [{ port: 'eighty' }] } }), /port/)
  t.match(schemaError({ ...find('HorizontalPodAutoscaler'), spec: { minReplicas: 1 } }), /maxReplicas|scaleTargetRef/)
  t.match(schemaError({ apiVersion: 'v9', kind: 'Nothing', metadata: { name: 'x' } }), /no schema/)

  // each misspelling in the pod or the container: kubectl would drop it silently (or refuse it with
  // --validate=strict); here each is an error naming the field
  const pod = (d: Doc): { securityContext: Obj, containers: Array<{ securityContext: Obj }> } & Obj => (d as unknown as { spec: { template: { spec: never } } }).spec.template.spec
  const misspelt: Array<[string, (d: Doc) => void, RegExp]> = [
    ['runAsNonroot', (d) => { const s = pod(d).securityContext; s['runAsNonroot'] = s['runAsNonRoot']; delete s['runAsNonRoot'] }, /runAsNonroot/],
    ['readOnlyRootFileSystem', (d) => { const s = pod(d).containers[0]!.securityContext; s['readOnlyRootFileSystem'] = s['readOnlyRootFilesystem']; delete s['readOnlyRootFilesystem'] }, /readOnlyRootFileSystem/],
    ['capabilties', (d) => { const s = pod(d).containers[0]!.securityContext; s['capabilties'] = s['capabilities']; delete s['capabilities'] }, /capabilties/],
    ['automountServiceAccountTokens', (d) => { pod(d)['automountServiceAccountTokens'] = false }, /automountServiceAccountTokens/],
    ['a misspelt top-level spec field', (d) => { (d as unknown as { spec: Obj }).spec['replica'] = 3 }, /replica/],
  ]
  for (const [what, change, field] of misspelt) {
    const d = structuredClone(find('Deployment'))
    change(d)
    const error = schemaError(d)
    t.match(error, /must NOT have additional properties/, `${what}: rejected`)
    t.match(error, field, `${what}: the error names the field`)
  }
  const np = structuredClone(find('NetworkPolicy')) as Doc & { spec: Obj }
  np.spec['ingres'] = []
  t.match(schemaError(np), /ingres/, 'a misspelt NetworkPolicy field too')
})

interface Container {
  args: string[]
  ports: Array<{ name: string, containerPort: number }>
  env: Array<{ name: string, valueFrom?: { secretKeyRef?: { name: string, key: string } }, value?: string }>
  readinessProbe: { httpGet: { path: string, port: string } }
  livenessProbe: { httpGet: { path: string, port: string } }
  lifecycle?: { preStop?: { exec: { command: string[] } } }
  resources: { requests: { cpu: string, memory: string } }
  volumeMounts: Array<{ name: string, mountPath: string }>
}
interface PodSpec {
  terminationGracePeriodSeconds: number
  automountServiceAccountToken: boolean
  topologySpreadConstraints: Array<{ topologyKey: string, maxSkew: number, labelSelector: { matchLabels: Record<string, string> } }>
  containers: Container[]
  affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: Array<{ podAffinityTerm: { topologyKey: string, labelSelector: { matchLabels: Record<string, string> } } }> } }
  volumes: Array<{ name: string, configMap?: { name: string } }>
}

t.test('the Deployment runs claylb as the README says', async (t) => {
  const d = find('Deployment') as Doc & { spec: { replicas?: number, selector: { matchLabels: Record<string, string> }, template: { metadata: { labels: Record<string, string>, annotations: Record<string, string> }, spec: PodSpec } } }
  const pod = d.spec.template.spec
  const c = pod.containers[0]!
  const cm = find('ConfigMap') as Doc & { data: Record<string, string> }
  const config = buildConfig(parse(cm.data['config.yaml']!), {}, SECRET_ENV)

  t.notOk('replicas' in d.spec, 'no replicas: the HorizontalPodAutoscaler alone sets the count')
  t.match(d.spec.template.metadata.labels, d.spec.selector.matchLabels, 'the selector picks its own pods')
  const admin = c.ports.find((p) => p.name === 'admin')!
  t.equal(admin.containerPort, config.admin.port, "the admin port is the config's")
  t.equal(c.ports.find((p) => p.name === 'http')!.containerPort, config.listen.port, "the proxy port is the config's")
  t.equal(config.admin.host, '0.0.0.0', 'the kubelet can reach the admin port')
  t.same(c.readinessProbe.httpGet, { path: '/readyz', port: 'admin' })
  t.same(c.livenessProbe.httpGet, { path: '/healthz', port: 'admin' })

  // claylb keeps accepting after SIGTERM while the endpoints forget the pod: no preStop sleep
  t.equal(c.lifecycle?.preStop, undefined, 'no preStop: shutdown.acceptGraceMs does its job')
  t.ok(config.shutdown.acceptGraceMs >= 5000, `the accept grace (${config.shutdown.acceptGraceMs} ms) outlasts the endpoints' propagation`)
  t.ok(config.shutdown.timeoutMs >= config.timeouts.requestMs, 'the drain outlasts the request limit')
  const budget = (config.shutdown.acceptGraceMs + config.shutdown.timeoutMs) / 1000
  t.ok(pod.terminationGracePeriodSeconds > budget, `grace ${pod.terminationGracePeriodSeconds} s > accept grace + drain ${budget} s`)

  t.ok(c.resources.requests.cpu && c.resources.requests.memory, 'resource requests (the HPA needs the cpu one)')
  const anti = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]!.podAffinityTerm
  t.equal(anti.topologyKey, 'kubernetes.io/hostname')
  t.match(d.spec.template.metadata.labels, anti.labelSelector.matchLabels, 'anti-affinity against its own replicas')

  for (const name of [config.session.secretEnv, config.admin.tokenEnv!, config.redis.passwordEnv!]) {
    t.ok(c.env.find((e) => e.name === name)?.valueFrom?.secretKeyRef, `${name} comes from a Secret`)
  }
  t.same(Object.keys(SECRET_ENV).sort(), c.env.filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.name).sort(), 'the test gives the pod exactly the secrets it gets')
  t.notOk(c.env.some((e) => e.value !== undefined && /SECRET|PASSWORD|TOKEN/i.test(e.name)), 'no literal secret')
  t.notOk(docs.some((x) => x.kind === 'Secret'), 'no Secret committed (README says how to create it)')

  const configPath = c.args[c.args.indexOf('--config') + 1]!
  const mount = c.volumeMounts.find((m) => configPath.startsWith(m.mountPath + '/'))!
  t.ok(mount, `${configPath} is on a mounted volume`)
  t.equal(pod.volumes.find((v) => v.name === mount.name)?.configMap?.name, cm.metadata.name, 'from the ConfigMap')
  t.ok(cm.data[configPath.slice(mount.mountPath.length + 1)], 'under the key the path names')
  t.ok(config.redis.cluster?.length, 'state in a Redis Cluster')
  t.notMatch(cm.data['config.yaml']!, /redis:\/\/[^@\s"]*:[^@\s"]*@/, 'no password in a ConfigMap URL')
  t.equal(config.idempotency.waitReplicas, 1, 'waitReplicas 1: a failover loses no claim or record')

  t.equal(config.admin.token, SECRET_ENV.CLAYLB_ADMIN_TOKEN, 'the admin token comes from the Secret')
  t.match(configProblems(parse(cm.data['config.yaml']!), { ...SECRET_ENV, CLAYLB_ADMIN_TOKEN: '' }), [/admin\.tokenEnv: the environment variable CLAYLB_ADMIN_TOKEN is not set/], 'without it the pod does not start')
  t.equal(pod.automountServiceAccountToken, false, 'no service account token in the pod: claylb never calls the API')
  const zone = pod.topologySpreadConstraints.find((s) => s.topologyKey === 'topology.kubernetes.io/zone')
  t.ok(zone, 'replicas spread across zones')
  t.match(d.spec.template.metadata.labels, zone!.labelSelector.matchLabels, 'spread among its own replicas')
  const ann = d.spec.template.metadata.annotations
  t.equal(ann['prometheus.io/scrape'], 'true')
  t.equal(Number(ann['prometheus.io/port']), config.admin.port, 'scraped on the admin port')
  t.equal(ann['prometheus.io/path'], '/metrics')
  const volume = pod.volumes.find((v) => v.name === mount.name)!
  t.equal(volume.configMap?.name, kustomization.configMapGenerator[0]!.name, 'the generated ConfigMap (kustomize adds the same hash to this reference)')
})

t.test('the NetworkPolicy: the proxy port for anyone, the admin port only for the scraper and the operators', async (t) => {
  const labels = (find('Deployment') as Doc & { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels
  const np = find('NetworkPolicy') as Doc & { spec: { podSelector: { matchLabels: Record<string, string> }, policyTypes: string[], ingress: Array<{ ports: Array<{ port: string | number }>, from?: Array<Record<string, { matchLabels: Record<string, string> }>> }> } }
  t.match(labels, np.spec.podSelector.matchLabels, "it selects claylb's pods")
  t.same(np.spec.policyTypes, ['Ingress'])
  const rulesFor = (port: string): typeof np.spec.ingress => np.spec.ingress.filter((r) => r.ports.some((p) => p.port === port))
  t.equal(rulesFor('http').length, 1)
  const admin = rulesFor('admin')
  t.equal(admin.length, 1, 'one rule for the admin port')
  t.ok(admin.every((r) => r.from !== undefined && r.from.length > 0), 'never from everyone (an absent or empty from admits all)')
  for (const peer of admin[0]!.from!) t.ok(Object.keys(peer['podSelector']?.matchLabels ?? {}).length > 0, 'each peer names its pods')
  t.ok(admin[0]!.from!.some((p) => p['namespaceSelector'] !== undefined), 'the scraper, from its own namespace')
  t.ok(admin[0]!.from!.some((p) => p['namespaceSelector'] === undefined), "this namespace's operators")
})

t.test('Service, PodDisruptionBudget and HPA point at the Deployment', async (t) => {
  const labels = (find('Deployment') as Doc & { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels
  const svc = find('Service') as Doc & { spec: { selector: Record<string, string>, ports: Array<{ targetPort: string }> } }
  t.match(labels, svc.spec.selector)
  t.same(svc.spec.ports.map((p) => p.targetPort), ['http'], 'the proxy port only, never the admin port')
  const pdb = find('PodDisruptionBudget') as Doc & { spec: { maxUnavailable: number, selector: { matchLabels: Record<string, string> } } }
  t.match(labels, pdb.spec.selector.matchLabels)
  t.equal(pdb.spec.maxUnavailable, 1)
  const hpa = find('HorizontalPodAutoscaler') as Doc & { spec: { minReplicas: number, maxReplicas: number, scaleTargetRef: { kind: string, name: string } } }
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'claylb' })
  t.equal(hpa.spec.minReplicas, 3, 'at least 3 replicas (the Deployment names none: the HPA owns the count)')
  t.ok(hpa.spec.maxReplicas > hpa.spec.minReplicas)
})

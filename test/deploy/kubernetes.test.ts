/**
 * config/kubernetes/: every manifest validated against the Kubernetes API's own schemas
 * (kubernetes-models), the kustomization names every file, and what running claylb needs holds across
 * the files: probes on the admin port of the ConfigMap's config, a preStop drain that fits the grace
 * period, the session secret from a Secret, selectors that match, a config claylb itself accepts.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments, parse } from 'yaml'
import { ConfigMap, Service } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { ROOT } from '../helpers/claylb.js'
import { buildConfig } from '../../src/config/load.js'

const DIR = join(ROOT, 'config/kubernetes')
type Doc = { apiVersion: string, kind: string, metadata: { name: string }, [k: string]: unknown }

const MODELS: Record<string, new (data: never) => { validate: () => void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
}

/** The schema errors of one object, or why it cannot be checked; '' when it is valid. */
function schemaError (doc: Doc): string {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`]
  if (Model === undefined) return `no schema for ${doc.apiVersion} ${doc.kind}`
  try {
    new Model(doc as never).validate()
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { apiVersion: string, kind: string, resources: string[] }
const docs: Doc[] = kustomization.resources.flatMap((f) => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Doc))
const find = (kind: string): Doc => {
  const found = docs.filter((d) => d.kind === kind)
  if (found.length !== 1) throw new Error(`${found.length} ${kind} objects in config/kubernetes`)
  return found[0]!
}

t.test('kustomization.yaml lists every manifest in the folder', async (t) => {
  t.equal(kustomization.apiVersion, 'kustomize.config.k8s.io/v1beta1')
  t.equal(kustomization.kind, 'Kustomization')
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()
  t.same([...kustomization.resources].sort(), files)
})

t.test('every manifest is valid against the Kubernetes schema', async (t) => {
  t.same(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service'])
  for (const d of docs) t.equal(schemaError(d), '', `${d.kind} ${d.metadata.name}`)
})

t.test('the schema check can fail', async (t) => {
  const deployment = structuredClone(find('Deployment')) as Doc & { spec: Record<string, unknown> }
  t.match(schemaError({ ...deployment, spec: { ...deployment.spec, replicas: 'three' } }), /replicas/)
  t.match(schemaError({ ...deployment, spec: { ...deployment.spec, selector: undefined } }), /selector/)
  t.match(schemaError({ ...find('Service'), spec: { ports: [{ port: 'eighty' }] } }), /port/)
  t.match(schemaError({ ...find('HorizontalPodAutoscaler'), spec: { minReplicas: 1 } }), /maxReplicas|scaleTargetRef/)
  t.match(schemaError({ apiVersion: 'v9', kind: 'Nothing', metadata: { name: 'x' } }), /no schema/)
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
  containers: Container[]
  affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: Array<{ podAffinityTerm: { topologyKey: string, labelSelector: { matchLabels: Record<string, string> } } }> } }
  volumes: Array<{ name: string, configMap?: { name: string } }>
}

t.test('the Deployment runs claylb as the README says', async (t) => {
  const d = find('Deployment') as Doc & { spec: { replicas: number, selector: { matchLabels: Record<string, string> }, template: { metadata: { labels: Record<string, string> }, spec: PodSpec } } }
  const pod = d.spec.template.spec
  const c = pod.containers[0]!
  const cm = find('ConfigMap') as Doc & { data: Record<string, string> }
  const config = buildConfig(parse(cm.data['config.yaml']!), {}, {})

  t.equal(d.spec.replicas, 3)
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

  const secret = c.env.find((e) => e.name === config.session.secretEnv)
  t.ok(secret?.valueFrom?.secretKeyRef, `${config.session.secretEnv} comes from a Secret`)
  t.notOk(c.env.some((e) => e.value !== undefined && /SECRET|PASSWORD|TOKEN/i.test(e.name)), 'no literal secret')
  t.notOk(docs.some((x) => x.kind === 'Secret'), 'no Secret committed (README says how to create it)')

  const configPath = c.args[c.args.indexOf('--config') + 1]!
  const mount = c.volumeMounts.find((m) => configPath.startsWith(m.mountPath + '/'))!
  t.ok(mount, `${configPath} is on a mounted volume`)
  t.equal(pod.volumes.find((v) => v.name === mount.name)?.configMap?.name, cm.metadata.name, 'from the ConfigMap')
  t.ok(cm.data[configPath.slice(mount.mountPath.length + 1)], 'under the key the path names')
  t.ok(config.redis.cluster?.length, 'state in a Redis Cluster')
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
  t.equal(hpa.spec.minReplicas, 3, 'never fewer than the Deployment asks for')
  t.ok(hpa.spec.maxReplicas > hpa.spec.minReplicas)
})

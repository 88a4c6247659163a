declare module 'parse-prometheus-text-format' {
  export interface Sample {
    value?: string
    labels?: Record<string, string>
    timestamp_ms?: string
    buckets?: Record<string, string>
    count?: string
    sum?: string
  }
  export interface Family { name: string, help: string, type: string, metrics: Sample[] }
  export default function parse (text: string): Family[]
}

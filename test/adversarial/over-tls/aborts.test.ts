import { overTls } from './twin.js'

// 2,000 aborts over TLS, not the plain file's 10,000: each abort is a full TLS handshake on both ends
// (about 26 ms of CPU on a loaded 2-core machine, 262 s for 10,000), and what TLS adds to an abort
// (the TLS socket's teardown) is the same the first time as the ten-thousandth. CLAYLB_ABORTS still wins.
overTls('aborts.test.ts', { CLAYLB_ABORTS: process.env['CLAYLB_ABORTS'] ?? '500' })

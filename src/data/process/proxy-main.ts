/**
 * @module cores/proxy-main
 * The program node:cluster runs as a proxy process (cores/primary.ts forks it): nothing else.
 */
import { runProxyProcess } from './proxy-process.js'

void runProxyProcess()

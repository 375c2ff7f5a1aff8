// ESM entry point of writelane/otel: the same module as the CommonJS entry.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const otel = require('./otel.js');

export const { instrument, Telemetry, ENTITY_ATTRIBUTES } = otel;

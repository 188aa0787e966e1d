export * from './keys.js';
export * from './keys.service.js';

export * from './people.js';
export * from './people.service.js';

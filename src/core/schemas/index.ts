export * from './schema-file.js';
export * from './schemas.js';
export * from './schemas.service.js';
export * as schemasRepo from './schemas.repo.js';

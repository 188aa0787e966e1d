// `npm run openapi`: writes docs/openapi.json from the routes as they are now.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { formatOpenApiDocument } from '../src/http/openapi.js';
import { generateOpenApiDocument, OPENAPI_FILE } from '../src/http/openapi-file.js';

writeFileSync(OPENAPI_FILE, formatOpenApiDocument(await generateOpenApiDocument()));
console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`);

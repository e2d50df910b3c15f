import { MemoryStore } from '../../lib/memory/memory-store.js';
import { storeQueueSpec } from '../support/store-queue-spec.js';

storeQueueSpec('memory', (clock) => new MemoryStore(clock));

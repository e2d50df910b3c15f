import { describeCallPaths, plainClients } from './call-paths.js';

// The SDKs' own fetch: the decorator alone settles each call from its result and reads the
// final response's headers through the SDK.
describeCallPaths('the SDK fetch', plainClients);

// In-memory storage adapter for oidc-provider, written for the test peer.
//
// The library ships a memory adapter too, but it hides its entries in an LRU
// that drops them the moment they expire and cannot be listed. The test-only
// routes need to list a client's grants (to revoke them) and to push a device
// code past its expiry, and an expired device code must still be *found* so
// the token endpoint answers `expired_token` (RFC 8628) rather than "not found".
// So entries live until EXPIRY_GRACE_SECONDS after their expiry.

const EXPIRY_GRACE_SECONDS = 300;

// model name -> Map(id -> { payload, expiresAt (ms epoch or Infinity) })
const models = new Map();

function table(name) {
  let entries = models.get(name);
  if (!entries) {
    entries = new Map();
    models.set(name, entries);
  }
  return entries;
}

function live(entries, id) {
  const entry = entries.get(id);
  if (!entry) return undefined;
  if (entry.expiresAt + EXPIRY_GRACE_SECONDS * 1000 <= Date.now()) {
    entries.delete(id);
    return undefined;
  }
  return entry;
}

export class TestStoreAdapter {
  constructor(name) {
    this.name = name;
    this.entries = table(name);
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    this.entries.set(id, { payload: structuredClone(payload), expiresAt });
  }

  async find(id) {
    const entry = live(this.entries, id);
    return entry ? structuredClone(entry.payload) : undefined;
  }

  async findByUserCode(userCode) {
    for (const [id, entry] of this.entries) {
      if (entry.payload.userCode === userCode && live(this.entries, id)) {
        return structuredClone(entry.payload);
      }
    }
    return undefined;
  }

  async findByUid(uid) {
    for (const [id, entry] of this.entries) {
      if (entry.payload.uid === uid && live(this.entries, id)) {
        return structuredClone(entry.payload);
      }
    }
    return undefined;
  }

  async consume(id) {
    const entry = live(this.entries, id);
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.entries.delete(id);
  }

  async revokeByGrantId(grantId) {
    revokeGrant(grantId);
  }
}

// Remove the grant and every token, code and device code issued under it.
export function revokeGrant(grantId) {
  let removed = 0;
  for (const [name, entries] of models) {
    for (const [id, entry] of entries) {
      const matches = name === 'Grant' ? id === grantId : entry.payload.grantId === grantId;
      if (matches) {
        entries.delete(id);
        removed += 1;
      }
    }
  }
  return removed;
}

export function grantIdsForClient(clientId) {
  return [...table('Grant')]
    .filter(([, entry]) => entry.payload.clientId === clientId)
    .map(([id]) => id);
}

// Pretend the device code behind `userCode` (normalized form) expired a second ago.
export function expireDeviceCode(userCode) {
  for (const entry of table('DeviceCode').values()) {
    if (entry.payload.userCode === userCode) {
      const past = Math.floor(Date.now() / 1000) - 1;
      entry.payload.exp = past;
      entry.expiresAt = past * 1000;
      return true;
    }
  }
  return false;
}

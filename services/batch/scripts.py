"""The Lua scripts that make every journal step atomic in Redis.

Key layout below the configured prefix ``P`` (``BATCH_KEY_PREFIX``):

- ``Pc:i:<id>``  hash of one catalog item: ``d`` its JSON, ``r`` its revision, ``x`` its index members
- ``Pc:o:<order>`` sorted set per ordering (path, size, modified, taken, quality), scores all 0
- ``Pc:v``  catalog version, incremented by every change (the summary cache key carries it)
- ``Pb:<id>`` hash of a batch; ``Pb:<id>:ev`` its event stream (entry id ``<sequence>-0``);
  ``:sel`` its selection (a list); ``:bits`` one bit per selected item recorded;
  ``:stage`` staged catalog changes of an atomic batch
- ``Pb:all`` sorted set of batch ids by creation time; ``Pb:active`` set of unfinished batches;
  ``Pb:idem:<key>`` the batch an idempotency key names

Every script runs as one Redis command, so each either happens whole or not at all: that is
what makes a SIGKILL at any moment safe.
"""

from __future__ import annotations

__all__ = ["COMMIT", "CREATE", "EMIT", "RECORD"]

# Shared Lua: apply one catalog change (payload: {"d": record JSON or "" to delete, "x": [members]}).
_APPLY = r"""
local ORDERS = {'path', 'size', 'modified', 'taken', 'quality'}
local function apply(p, cid, payload)
  local key = p .. 'c:i:' .. cid
  local old = redis.call('HGET', key, 'x')
  if old then
    local members = cjson.decode(old)
    for i, order in ipairs(ORDERS) do
      if members[i] then redis.call('ZREM', p .. 'c:o:' .. order, members[i]) end
    end
  end
  local change = cjson.decode(payload)
  if change['d'] == '' then
    redis.call('DEL', key)
    return
  end
  local rev = tonumber(redis.call('HGET', key, 'r') or '0') + 1
  redis.call('HSET', key, 'd', change['d'], 'r', rev, 'x', cjson.encode(change['x']))
  for i, order in ipairs(ORDERS) do
    redis.call('ZADD', p .. 'c:o:' .. order, 0, change['x'][i])
  end
end
local function current_rev(p, cid)
  return redis.call('HGET', p .. 'c:i:' .. cid, 'r') or '0'
end
"""

# Record the outcome of a unit of work: per item its bit, counter, event, and catalog change
# (applied now, or staged for an atomic batch). Items whose bit is already set are skipped, so a
# unit recorded before a crash is never recorded twice. When a change's base revision no longer
# matches the catalog, nothing is written and the conflicting item ids come back (re-derive, retry).
# ARGV: prefix, batch id, mode (apply|stage), events kept, n, then n x (index, outcome, event JSON,
# catalog id or "", base revision, payload).
RECORD = (
    _APPLY
    + r"""
local p, b, mode, kept, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local bk = p .. 'b:' .. b
local conflicts = {}
for i = 0, n - 1 do
  local o = 6 + i * 6
  if ARGV[o + 3] ~= '' and redis.call('GETBIT', bk .. ':bits', ARGV[o]) == 0 then
    if current_rev(p, ARGV[o + 3]) ~= ARGV[o + 4] then table.insert(conflicts, ARGV[o + 3]) end
  end
end
if #conflicts > 0 then return {0, conflicts} end
local changed = false
for i = 0, n - 1 do
  local o = 6 + i * 6
  if redis.call('GETBIT', bk .. ':bits', ARGV[o]) == 0 then
    redis.call('SETBIT', bk .. ':bits', ARGV[o], 1)
    redis.call('HINCRBY', bk, ARGV[o + 1], 1)
    local cid = ARGV[o + 3]
    if cid ~= '' then
      if mode == 'apply' then
        apply(p, cid, ARGV[o + 5])
        changed = true
      else
        redis.call('HSET', bk .. ':stage', cid, ARGV[o + 4] .. '\n' .. ARGV[o + 5])
      end
    end
    local seq = redis.call('HINCRBY', bk, 'seq', 1)
    redis.call('XADD', bk .. ':ev', 'MAXLEN', '~', kept, seq .. '-0', 'e', ARGV[o + 2])
  end
end
if changed then redis.call('INCR', p .. 'c:v') end
return {1, {}}
"""
)

# Commit an atomic batch's staged catalog changes in one step: every base revision must still
# match (else nothing is written and up to 1000 conflicting ids come back), then every change is
# applied, the catalog version moves once and the batch is marked catalog_applied. Running it again
# after that does nothing. ARGV: prefix, batch id.
COMMIT = (
    _APPLY
    + r"""
local p, b = ARGV[1], ARGV[2]
local bk = p .. 'b:' .. b
if redis.call('HGET', bk, 'catalog_applied') == '1' then return {1, {}} end
local stage = bk .. ':stage'
local conflicts = {}
local cursor = '0'
repeat
  local page = redis.call('HSCAN', stage, cursor, 'COUNT', 500)
  cursor = page[1]
  for i = 1, #page[2], 2 do
    local value = page[2][i + 1]
    local cut = string.find(value, '\n', 1, true)
    if current_rev(p, page[2][i]) ~= string.sub(value, 1, cut - 1) and #conflicts < 1000 then
      table.insert(conflicts, page[2][i])
    end
  end
until cursor == '0'
if #conflicts > 0 then return {0, conflicts} end
local count = 0
cursor = '0'
repeat
  local page = redis.call('HSCAN', stage, cursor, 'COUNT', 500)
  cursor = page[1]
  for i = 1, #page[2], 2 do
    local value = page[2][i + 1]
    local cut = string.find(value, '\n', 1, true)
    apply(p, page[2][i], string.sub(value, cut + 1))
    count = count + 1
  end
until cursor == '0'
if count > 0 then redis.call('INCR', p .. 'c:v') end
redis.call('HSET', bk, 'catalog_applied', '1')
return {1, {}}
"""
)

# Emit events and change batch fields in one step (a state change and the event that reports it).
# ARGV: prefix, batch id, events kept, number of field/value pairs, pairs..., events...
# Returns the sequence number of the last event.
EMIT = r"""
local p, b, kept, nf = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local bk = p .. 'b:' .. b
for i = 0, nf - 1 do
  redis.call('HSET', bk, ARGV[5 + i * 2], ARGV[6 + i * 2])
end
local seq = tonumber(redis.call('HGET', bk, 'seq') or '0')
for i = 5 + nf * 2, #ARGV do
  seq = redis.call('HINCRBY', bk, 'seq', 1)
  redis.call('XADD', bk .. ':ev', 'MAXLEN', '~', kept, seq .. '-0', 'e', ARGV[i])
end
return seq
"""

# Create a batch with its first event, unless its idempotency key already names one (then that
# batch's id comes back and nothing is written). ARGV: prefix, batch id, idempotency key or "",
# listing member, event JSON, field/value pairs...
CREATE = r"""
local p, id, idem, member, event = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if idem ~= '' then
  local existing = redis.call('GET', p .. 'b:idem:' .. idem)
  if existing then return existing end
  redis.call('SET', p .. 'b:idem:' .. idem, id)
end
local bk = p .. 'b:' .. id
for i = 6, #ARGV, 2 do
  redis.call('HSET', bk, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', bk, 'seq', 1)
redis.call('XADD', bk .. ':ev', '1-0', 'e', event)
redis.call('ZADD', p .. 'b:all', 0, member)
redis.call('SADD', p .. 'b:active', id)
return id
"""

package store

import "github.com/redis/go-redis/v9"

// The Lua scripts of the shared store. Each runs atomically in Redis, so a
// check and the write that depends on it cannot interleave with another
// replica's. Times are passed as pad()ded strings and compared as strings;
// "now" is the calling replica's clock, as in Bolt.
//
// A revocation is stored in its kind's hash under iss || 0x00 || value as
// the JSON {"r": Revocation, "nb": pad(not_before), "e": pad(expires_at)};
// the id index maps id -> kind ":" field.

// scriptSpend: KEYS[1] replay key; ARGV now, exp, ttl ms. Returns 1 when
// the key was fresh.
var scriptSpend = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v > ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// scriptFingerprint folds one sighting into a fingerprint hash (fields f
// first seen, l last seen, ip, px prefix, ua, n count, e expiry), as
// mergeSighting does: an older sighting counts but keeps the latest client.
// KEYS[1] fingerprint key; ARGV now, at, ip, prefix, ua hash, exp, ttl ms.
var scriptFingerprint = redis.NewScript(`
local c = redis.call('HMGET', KEYS[1], 'f', 'l', 'ip', 'px', 'ua', 'n', 'e')
local at = ARGV[2]
if c[7] and c[7] > ARGV[1] and c[6] then
  local f, l, ip, px, ua, e = c[1], c[2], c[3], c[4], c[5], c[7]
  if at < f then f = at end
  if not (at < l) then l, ip, px, ua = at, ARGV[3], ARGV[4], ARGV[5] end
  local grow = ARGV[6] > e
  if grow then e = ARGV[6] end
  redis.call('HSET', KEYS[1], 'f', f, 'l', l, 'ip', ip, 'px', px, 'ua', ua, 'n', tostring(tonumber(c[6]) + 1), 'e', e)
  if grow then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
  return 1
end
redis.call('HSET', KEYS[1], 'f', at, 'l', at, 'ip', ARGV[3], 'px', ARGV[4], 'ua', ARGV[5], 'n', '1', 'e', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
`)

// luaRevHelpers are shared by the revocation scripts. ARGV[1] is now,
// ARGV[2] the prefix of the kind hashes.
const luaRevHelpers = `
local now, pfx = ARGV[1], ARGV[2]
local function split(ref)
  local i = string.find(ref, ':', 1, true)
  if not i then return nil, nil end
  return string.sub(ref, 1, i - 1), string.sub(ref, i + 1)
end
local function lookup(ref)
  local k, f = split(ref)
  if not k then return nil end
  local v = redis.call('HGET', pfx .. k, f)
  if not v then return nil end
  return cjson.decode(v), k, f
end
`

// scriptPutRevocations stores revocations with the replacement rule of
// putRevocation, all or none: a first pass checks every id, a second
// writes. Each stored revocation is appended to the stream.
// KEYS[1] stream, KEYS[2] id index; ARGV now, hash prefix, stream maxlen,
// count, then per revocation: kind, field, id, value JSON.
// Returns {"exists", index} or {"ok", last stream id, kept JSON...}.
var scriptPutRevocations = redis.NewScript(luaRevHelpers + `
local maxlen, n = ARGV[3], tonumber(ARGV[4])
local claimed = {}
for i = 0, n - 1 do
  local b = 5 + i * 4
  local ref, id = ARGV[b] .. ':' .. ARGV[b + 1], ARGV[b + 2]
  local c = claimed[id]
  if c == nil then
    local cur = redis.call('HGET', KEYS[2], id)
    if cur and cur ~= ref then
      local t = lookup(cur)
      if t and t.e > now and t.r.id == id then return {'exists', tostring(i)} end
    end
  elseif c ~= ref then
    return {'exists', tostring(i)}
  end
  claimed[id] = ref
end
local out = {'ok', ''}
for i = 0, n - 1 do
  local b = 5 + i * 4
  local kind, field = ARGV[b], ARGV[b + 1]
  local hk, ref = pfx .. kind, kind .. ':' .. field
  local kept = cjson.decode(ARGV[b + 3])
  local old = redis.call('HGET', hk, field)
  if old then
    local prev = cjson.decode(old)
    if prev.e > now then
      local e, exp = kept.e, kept.r.expires_at
      if prev.nb > kept.nb then kept = prev end
      if prev.e > e then e, exp = prev.e, prev.r.expires_at end
      kept.e, kept.r.expires_at = e, exp
    end
    if prev.r.id ~= kept.r.id and redis.call('HGET', KEYS[2], prev.r.id) == ref then
      redis.call('HDEL', KEYS[2], prev.r.id)
    end
  end
  local enc = cjson.encode(kept)
  redis.call('HSET', hk, field, enc)
  redis.call('HSET', KEYS[2], kept.r.id, ref)
  out[2] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'op', 'put', 'rev', enc)
  out[#out + 1] = enc
end
return out
`)

// scriptDeleteRevocation removes the live revocation with an id and
// appends the deletion to the stream.
// KEYS[1] stream, KEYS[2] id index; ARGV now, hash prefix, maxlen, id.
// Returns {"notfound"} or {"ok", stream id, deleted JSON}.
var scriptDeleteRevocation = redis.NewScript(luaRevHelpers + `
local id = ARGV[4]
local ref = redis.call('HGET', KEYS[2], id)
if not ref then return {'notfound'} end
local t, k, f = lookup(ref)
if not t or t.e <= now or t.r.id ~= id then return {'notfound'} end
local enc = redis.call('HGET', pfx .. k, f)
redis.call('HDEL', pfx .. k, f)
redis.call('HDEL', KEYS[2], id)
local sid = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'op', 'del', 'rev', enc)
return {'ok', sid, enc}
`)

// scriptSweep removes the named fields of a kind hash whose revocation has
// expired, with their id entries. KEYS[1] kind hash, KEYS[2] id index;
// ARGV now, kind, fields... Returns the number removed.
var scriptSweep = redis.NewScript(`
local now, kind, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local t = cjson.decode(v)
    if t.e <= now then
      redis.call('HDEL', KEYS[1], ARGV[i])
      if redis.call('HGET', KEYS[2], t.r.id) == kind .. ':' .. ARGV[i] then redis.call('HDEL', KEYS[2], t.r.id) end
      n = n + 1
    end
  end
end
return n
`)

// luaFamHelpers are shared by the family scripts. A family is a hash {j:
// Family JSON, e: pad(expires_at)}; a refresh-token hash is a hash {fam:
// family id, e: pad(family expiry)}. ARGV[1] is now, ARGV[2] the family
// key prefix, ARGV[3] now as RFC 3339.
const luaFamHelpers = `
local now, fpfx, nowtxt = ARGV[1], ARGV[2], ARGV[3]
local function get(key)
  local v = redis.call('HMGET', key, 'j', 'e')
  if v[1] and v[2] and v[2] > now then return cjson.decode(v[1]), v[2] end
  return nil
end
local function tok(key)
  local v = redis.call('HMGET', key, 'fam', 'e')
  if v[1] and v[2] and v[2] > now then return v[1], v[2] end
  return nil
end
local function put(key, f, e)
  local j = cjson.encode(f)
  redis.call('HSET', key, 'j', j, 'e', e)
  return j
end
local function puttok(key, id, e, famkey)
  redis.call('HSET', key, 'fam', id, 'e', e)
  local ttl = redis.call('PTTL', famkey)
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
`

// scriptCreateFamily: KEYS[1] family, KEYS[2] token; ARGV now, prefix,
// now text, family JSON, exp, ttl ms. Returns {"exists"} or {"ok"}.
var scriptCreateFamily = redis.NewScript(luaFamHelpers + `
if get(KEYS[1]) or tok(KEYS[2]) then return {'exists'} end
redis.call('HSET', KEYS[1], 'j', ARGV[4], 'e', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
puttok(KEYS[2], cjson.decode(ARGV[4]).id, ARGV[5], KEYS[1])
return {'ok'}
`)

// scriptFindFamily: KEYS[1] token; ARGV now, prefix, now text. Returns
// {"notfound"} or {"ok", family JSON}.
var scriptFindFamily = redis.NewScript(luaFamHelpers + `
local id = tok(KEYS[1])
if not id then return {'notfound'} end
local v = redis.call('HMGET', fpfx .. id, 'j', 'e')
if not (v[1] and v[2] and v[2] > now) then return {'notfound'} end
return {'ok', v[1]}
`)

// scriptRotateFamily: KEYS[1] family, KEYS[2] old token, KEYS[3] new
// token; ARGV now, prefix, now text, family id, old hash, new hash.
// Returns {"notfound"}, {"exists"}, or {verdict, family JSON} with verdict
// ok, revoked or reuse.
var scriptRotateFamily = redis.NewScript(luaFamHelpers + `
local f, e = get(KEYS[1])
if not f then return {'notfound'} end
if f.revoked_at then return {'revoked', cjson.encode(f)} end
if ARGV[5] == f.current then
  if tok(KEYS[3]) then return {'exists'} end
  puttok(KEYS[3], f.id, e, KEYS[1])
  f.current, f.rotated_at, f.rotations = ARGV[6], nowtxt, (f.rotations or 0) + 1
  return {'ok', put(KEYS[1], f, e)}
end
local id = tok(KEYS[2])
if id ~= ARGV[4] then return {'notfound'} end
f.revoked_at = nowtxt
return {'reuse', put(KEYS[1], f, e)}
`)

// scriptUseRefreshToken: KEYS[1] token, KEYS[2] family of the presented
// family id; ARGV now, prefix, now text, new family JSON, exp, ttl ms,
// hash, from, since (the reuse grace: the earliest instant, padded ns, at
// which the current hash may have become current to be let through again
// from the same from; "" no grace). The family hash keeps that instant in
// field "cur". Returns {"lost"}, {"exists"} or {verdict, family JSON} with
// verdict ok, revoked or reuse.
var scriptUseRefreshToken = redis.NewScript(luaFamHelpers + `
local from, since = ARGV[8], ARGV[9]
local id = tok(KEYS[1])
if id then
  local fk = fpfx .. id
  local f, e = get(fk)
  if not f then return {'lost'} end
  if f.revoked_at then return {'reuse', cjson.encode(f)} end
  if since ~= '' and from ~= '' and f.current == ARGV[7] and not f.retried and f.current_from == from then
    local cur = redis.call('HGET', fk, 'cur')
    if cur and cur >= since then
      f.retried = true
      return {'ok', put(fk, f, e)}
    end
  end
  f.revoked_at = nowtxt
  return {'reuse', put(fk, f, e)}
end
local f, e = get(KEYS[2])
if not f then
  redis.call('HSET', KEYS[2], 'j', ARGV[4], 'e', ARGV[5], 'cur', now)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  puttok(KEYS[1], cjson.decode(ARGV[4]).id, ARGV[5], KEYS[2])
  return {'ok', ARGV[4]}
end
if f.revoked_at then return {'revoked', cjson.encode(f)} end
puttok(KEYS[1], f.id, e, KEYS[2])
f.current, f.rotated_at, f.rotations = ARGV[7], nowtxt, (f.rotations or 0) + 1
f.retried = nil
if from ~= '' then f.current_from = from else f.current_from = nil end
redis.call('HSET', KEYS[2], 'cur', now)
return {'ok', put(KEYS[2], f, e)}
`)

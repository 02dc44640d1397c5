package redisstore

import (
	"crypto/sha1"
	"encoding/hex"
)

// announceLua records one announce; see the package documentation.
//
// KEYS: 1 seeders and 2 leechers of the peer's address family, 3 seeders
// and 4 leechers of the other family, 5 the completed counter, 6 the byte
// totals of private sessions.
// ARGV: 1 member (compact address), 2 now, 3 cutoff, 4 ttl, 5 seeder,
// 6 stopped, 7 completed ("1" or "0"), 8 numwant of the own family,
// 9 other family wanted ("1"/"0"), 10 peers per family at most, 11 account
// ("" none, "s" event=started, "c" otherwise), 12 uploaded, 13 downloaded.
//
// Returns {seeders, leechers, uploaded delta, downloaded delta, {peers}},
// or the error SWARMFULL.
const announceLua = `
local S, L, S2, L2, D, U = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local m = ARGV[1]
local now, cutoff, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seeder, stopped, completed = ARGV[5] == '1', ARGV[6] == '1', ARGV[7] == '1'
local numwant, other, maxpeers = tonumber(ARGV[8]), ARGV[9] == '1', tonumber(ARGV[10])
local acct = ARGV[11]

-- Expired peers are the lowest scores: drop a bounded number per set. A
-- set that had more than that may still hold expired peers, which picks
-- from it then filter out by score (reading scores costs as much as the
-- rest of the script, so it is done only then).
local stale = {}
local function trim(k)
  local old = redis.call('ZRANGE', k, '-inf', '(' .. cutoff, 'BYSCORE', 'LIMIT', 0, 16)
  if #old > 0 then
    redis.call('ZREM', k, unpack(old))
    if acct ~= '' then redis.call('HDEL', U, unpack(old)) end
    if #old == 16 then stale[k] = true end
  end
end
trim(S)
trim(L)
if other then
  trim(S2)
  trim(L2)
end

local wasSeeder = redis.call('ZSCORE', S, m) ~= false
if stopped then
  redis.call('ZREM', S, m)
  redis.call('ZREM', L, m)
else
  local k, o = L, S
  if seeder then k, o = S, L end
  if redis.call('ZADD', k, now, m) == 1 and redis.call('ZREM', o, m) == 0 then
    if redis.call('ZCARD', k) + redis.call('ZCARD', o) > maxpeers then
      redis.call('ZREM', k, m)
      return redis.error_reply('SWARMFULL torrent has the maximum number of peers')
    end
  end
  redis.call('EXPIRE', k, ttl)
end
if completed and not wasSeeder then
  redis.call('INCR', D)
end

local du, dd = 0, 0
if acct ~= '' then
  local up, down = tonumber(ARGV[12]), tonumber(ARGV[13])
  local prev = redis.call('HGET', U, m)
  local pu, pd = up, down
  if prev then
    local i = string.find(prev, ':', 1, true)
    pu, pd = tonumber(string.sub(prev, 1, i - 1)), tonumber(string.sub(prev, i + 1))
  elseif acct == 's' then
    pu, pd = 0, 0
  end
  du, dd = up - pu, down - pd
  if du < 0 then du = up end
  if dd < 0 then dd = down end
  if stopped then
    redis.call('HDEL', U, m)
  else
    redis.call('HSET', U, m, ARGV[12] .. ':' .. ARGV[13])
    redis.call('EXPIRE', U, ttl)
  end
end

local out = {}
local function pick(k, n)
  if n <= 0 then return 0 end
  local got = 0
  if stale[k] then
    local r = redis.call('ZRANDMEMBER', k, n + 1, 'WITHSCORES')
    for i = 1, #r, 2 do
      if got >= n then break end
      if r[i] ~= m and tonumber(r[i + 1]) >= cutoff then
        out[#out + 1] = r[i]
        got = got + 1
      end
    end
    return got
  end
  local r = redis.call('ZRANDMEMBER', k, n + 1)
  for i = 1, #r do
    if got >= n then break end
    if r[i] ~= m then
      out[#out + 1] = r[i]
      got = got + 1
    end
  end
  return got
end
if not stopped then
  local n = numwant
  if not seeder then n = n - pick(S, n) end
  n = n - pick(L, n)
  if other then
    if not seeder then n = n - pick(S2, n) end
    pick(L2, n)
  end
end

local function cnt(k) return redis.call('ZCOUNT', k, cutoff, '+inf') end
return {cnt(S) + cnt(S2), cnt(L) + cnt(L2), du, dd, out}
`

// scrapeLua reads a swarm's counters. KEYS: s4, l4, s6, l6, d; ARGV:
// cutoff. Returns {seeders, leechers, downloaded, known (0 or 1)}.
const scrapeLua = `
local cutoff = ARGV[1]
local function cnt(k) return redis.call('ZCOUNT', k, cutoff, '+inf') end
local d = redis.call('GET', KEYS[5])
local known = 0
if d or redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0 then known = 1 end
return {cnt(KEYS[1]) + cnt(KEYS[3]), cnt(KEYS[2]) + cnt(KEYS[4]), tonumber(d) or 0, known}
`

// Scripts of the user commands: each keeps a user's name, passkey and
// hash consistent in one atomic step. KEYS are in the {sower-users} slot.

// addUserLua: KEYS 1 user hash, 2 passkey key, 3 names set; ARGV 1 name,
// 2 passkey, 3 created (RFC 3339).
const addUserLua = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('EXISTS')
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'passkey', ARGV[2], 'created', ARGV[3], 'uploaded', 0, 'downloaded', 0)
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`

// setPasskeyLua replaces a user's passkey. KEYS 1 user hash, 2 key of the
// old passkey, 3 key of the new one (any key of the slot when revoking);
// ARGV 1 name, 2 the old passkey as read before (the change fails with
// CHANGED if it moved meanwhile), 3 the new passkey ("" revokes).
const setPasskeyLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOUSER')
end
local old = redis.call('HGET', KEYS[1], 'passkey') or ''
if old ~= ARGV[2] then
  return redis.error_reply('CHANGED')
end
if old ~= '' then redis.call('DEL', KEYS[2]) end
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[1]) end
redis.call('HSET', KEYS[1], 'passkey', ARGV[3])
return 1
`

// scrapeSHA is the script cache name of scrapeLua, for batched EVALSHA_RO.
var scrapeSHA = func() string {
	sum := sha1.Sum([]byte(scrapeLua))
	return hex.EncodeToString(sum[:])
}()

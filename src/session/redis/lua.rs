//! The Lua scripts of the Redis session store. Every change that touches more than one key runs
//! as one script, so it is atomic against every replica; every script that changes or ends a
//! session publishes the session id on the invalidation channel in the same step, which is what
//! keeps the per-replica session caches honest (`redis_cache.rs`). `PRUNE_LUA` is a prelude:
//! the store prepends it to the scripts that call `redis_now()` or `prune(...)`.
//!
//! The KEYS and ARGV each script expects are listed above it; the key names refer to the
//! layout table in `redis.rs`.

/// Removes index entries whose session key has expired by its Redis TTL (bounded work per call).
/// Shared by the scripts below; expects `now` in milliseconds of Redis time.
pub(super) const PRUNE_LUA: &str = r"
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function prune(ids, exp, now)
  local dead = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 1000)
  for _, m in ipairs(dead) do
    redis.call('ZREM', ids, m)
    redis.call('ZREM', exp, m)
  end
end
";

/// KEYS: s:{id}, ids, exp, u:{user}. ARGV: id, user, data, last_seen, ttl_ms, max_sessions,
/// session key prefix, invalidation channel. Returns 1, or 0 when the store is full.
pub(super) const INSERT_LUA: &str = r"
local now = redis_now()
prune(KEYS[2], KEYS[3], now)
-- The per-user set has no per-member TTL: drop ids whose session key is gone.
for _, m in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('EXISTS', ARGV[7] .. m) == 0 then redis.call('SREM', KEYS[4], m) end
end
-- Refuse rather than evict someone's live session.
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then
  return 0
end
local ttl = tonumber(ARGV[5])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'd', ARGV[3], 'l', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PUBLISH', ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + ttl), ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return 1
";

/// KEYS: s:{id}, ids, exp, u:{user}. ARGV: id, last_seen, ttl_ms, invalidation channel.
/// Returns 1, or 0 if the session is gone.
pub(super) const TOUCH_LUA: &str = r"
-- A session removed meanwhile (logout, revocation on another replica) stays removed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[3])
local now = redis_now()
redis.call('HSET', KEYS[1], 'l', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
-- Other replicas hold the old idle timestamp: they read it again.
redis.call('PUBLISH', ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + ttl), ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return 1
";

/// KEYS: s:{id}, ids, exp. ARGV: id, user key prefix, invalidation channel. Returns the
/// removed hash fields `[u, d, l]`, or nil when there was no session.
pub(super) const REMOVE_LUA: &str = r"
redis.call('PUBLISH', ARGV[3], ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'u', 'd', 'l')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('DEL', KEYS[1]) == 0 then return false end
if v[1] then redis.call('SREM', ARGV[2] .. v[1], ARGV[1]) end
return v
";

/// KEYS: u:{user}, ids, exp. ARGV: session key prefix, user, invalidation channel. Returns the
/// ids removed.
pub(super) const REMOVE_USER_LUA: &str = r"
local gone = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  local owner = redis.call('HGET', k, 'u')
  if owner == ARGV[2] then
    redis.call('DEL', k)
    redis.call('PUBLISH', ARGV[3], id)
    gone[#gone + 1] = id
  end
  if owner == ARGV[2] or not owner then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
redis.call('DEL', KEYS[1])
return gone
";

/// KEYS: ids, exp. Returns the number of sessions whose key has not expired.
pub(super) const COUNT_LUA: &str = r"
prune(KEYS[1], KEYS[2], redis_now())
return redis.call('ZCARD', KEYS[1])
";

/// KEYS: c:{key}. ARGV: window_ms. Returns the new count.
pub(super) const INCR_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
-- The window starts at the first increment; later ones do not extend it. A counter left
-- without a TTL gets one, so it can never lock anyone out for good.
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// KEYS: c:{key}. Takes one back from a live counter; a counter reaching zero is deleted, and
/// none is ever created (a DECR on a missing key would make one without a TTL).
pub(super) const DECR_LUA: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 1 then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
return 0
";

/// KEYS: z:{key}. ARGV: member, ttl_ms, cap. One atomic add: concurrent adders on any replicas
/// never drop each other's members (no read-modify-write in the caller). Members are ordered by
/// a per-set sequence, so the oldest go first past `cap`.
pub(super) const SET_ADD_LUA: &str = r"
local seq = redis.call('HINCRBY', KEYS[1] .. ':seq', 'n', 1)
redis.call('ZADD', KEYS[1], seq, ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[1] .. ':seq', ttl)
end
return 0
";

/// KEYS: z:{key}. Reads and deletes the set in one step: of two takers, one gets the members.
pub(super) const SET_TAKE_LUA: &str = r"
local m = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1], KEYS[1] .. ':seq')
return m
";

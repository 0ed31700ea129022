-- otel_ratelimit's decision core (otel_ratelimit/engine.py) ported function for function to
-- Lua, so a whole decision is one atomic EVALSHA on the Redis server that holds the key.
-- Any change to engine.py must be made here too: tests/test_redis.py runs the same generated
-- steps on memory, SQLite and Redis and compares every Grant, Outcome and the final state.
--
-- KEYS[1]  the key's state: one JSON string (the KeyState; windows as an ordered list)
-- ARGV[1]  "acquire" | "observe" | "release" | "load"
-- ARGV[2]  the KeyConfig as JSON (see redis.py: _config_json)
-- ARGV[3]  the time, or "" for the server's clock (TIME)
-- ARGV[4+] acquire: cost, max_wait | observe: ticket, status, observation JSON
--          release: grant.at, grant.cost
--
-- Numbers travel as text: arguments in Python's repr, results and the stored state in %.17g,
-- both read back exactly, so this engine and the Python one compute with the same doubles.
-- Every Python expression keeps its order of operations here (float results depend on it),
-- and windows keep their insertion order (the first window to decide names the policy).

local NULL = cjson.null
local ADAPTIVE = '~adaptive'

local function num(text)
  if text == 'inf' then return math.huge end
  if text == '-inf' then return -math.huge end
  return tonumber(text)
end

local function opt(v) -- JSON null (or a missing field) is nil
  if v == NULL then return nil end
  return v
end

local function truthy(v) -- Python's truth of a number or None
  return v ~= nil and v ~= 0
end

local function fmt(x)
  if x ~= x then return 'NaN' end
  if x == math.huge then return '1e999' end
  if x == -math.huge then return '-1e999' end
  return string.format('%.17g', x)
end

local key = KEYS[1]
local op = ARGV[1]
local cfg = cjson.decode(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = num(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local K = cfg.k -- engine constants, sent by Python so the two engines cannot drift apart
local PACE_BURST, PACE_SPAN, DEFAULT_RESET = K[1], K[2], K[3]
local PROBE_TIMEOUT, PROBE_POLL, RAMP, SPACING = K[4], K[5], K[6], K[7]
local LEAK_MATCH, HORIZON, PEAK_NEAR, PEAK_STEP = K[8], K[9], K[10], K[11]
local adaptive = opt(cfg.adaptive)
local codes = {}
for _, code in ipairs(cfg.codes) do codes[code] = true end

-- -- state: decode / encode -------------------------------------------------------------

local function new_window(limit, start, stop, base, spent, length, seq, assumed, leak)
  return {limit = limit, start = start, stop = stop, base = base, spent = spent,
          length = length, seq = seq, assumed = assumed, leak = leak or 0.0}
end

local function decode(raw)
  local d = cjson.decode(raw)
  local s = {seq = d.seq, cooldown_until = d.cooldown_until, strikes = d.strikes,
             tats = d.tats, rate = opt(d.rate), ramping = d.ramping,
             peak = opt(d.peak) or 0.0,
             probe_start = d.probe_start, probe_ok = d.probe_ok,
             decrease_seq = d.decrease_seq, last_at = d.last_at,
             probing_until = d.probing_until, sent = d.sent, answered = d.answered,
             wl = {}, w = {}}
  for _, w in ipairs(d.windows) do
    s.wl[#s.wl + 1] = w.name
    s.w[w.name] = new_window(w.limit, w.start, w['end'], w.base, w.spent, w.length, w.seq,
                             w.assumed, opt(w.leak))
  end
  return s
end

local function fresh()
  return {seq = 0, cooldown_until = 0, strikes = 0, tats = {}, rate = nil, ramping = false,
          peak = 0, probe_start = 0, probe_ok = 0, decrease_seq = -1, last_at = 0,
          probing_until = 0, sent = 0, answered = 0, wl = {}, w = {}}
end

local FIELDS = {'seq', 'cooldown_until', 'strikes', 'peak', 'probe_start', 'probe_ok',
                'decrease_seq', 'last_at', 'probing_until', 'sent', 'answered'}

local function encode(s)
  local out = {}
  for _, f in ipairs(FIELDS) do out[#out + 1] = '"' .. f .. '":' .. fmt(s[f]) end
  out[#out + 1] = '"rate":' .. (s.rate == nil and 'null' or fmt(s.rate))
  out[#out + 1] = '"ramping":' .. tostring(s.ramping)
  local tats = {}
  for name, tat in pairs(s.tats) do tats[#tats + 1] = cjson.encode(name) .. ':' .. fmt(tat) end
  out[#out + 1] = '"tats":{' .. table.concat(tats, ',') .. '}'
  local wins = {}
  for _, name in ipairs(s.wl) do
    local w = s.w[name]
    wins[#wins + 1] = '{"name":' .. cjson.encode(name) .. ',"limit":' .. fmt(w.limit)
      .. ',"start":' .. fmt(w.start) .. ',"end":' .. fmt(w.stop) .. ',"base":' .. fmt(w.base)
      .. ',"spent":' .. fmt(w.spent) .. ',"length":' .. fmt(w.length)
      .. ',"seq":' .. fmt(w.seq) .. ',"assumed":' .. tostring(w.assumed)
      .. ',"leak":' .. fmt(w.leak) .. '}'
  end
  out[#out + 1] = '"windows":[' .. table.concat(wins, ',') .. ']'
  return '{' .. table.concat(out, ',') .. '}'
end

local function set_window(s, name, w) -- a dict assignment: new names go last
  if s.w[name] == nil then s.wl[#s.wl + 1] = name end
  s.w[name] = w
end

-- -- engine.py, function for function ---------------------------------------------------

local function gcra_earliest(tat, t, cost, rate, burst)
  local interval = 1.0 / rate
  return math.max(t, tat - (burst - math.min(cost, burst)) * interval)
end

local function roll_window(w, t)
  if w.leak > 0 then
    if t <= w.start then return w end
    local base = math.min(w.limit, w.base - w.spent + w.leak * (t - w.start))
    local stop = t + (w.limit - base) / w.leak
    return new_window(w.limit, t, stop, base, 0.0, w.length, w.seq, w.assumed, w.leak)
  end
  if t < w.stop then return w end
  local length = w.length > 0 and w.length or w.stop - w.start
  length = math.max(length, 1e-3)
  local skipped = math.floor((t - w.stop) / length)
  local start = w.stop + skipped * length
  return new_window(w.limit, start, start + length, w.limit, 0.0, w.length, w.seq, true)
end

local function unroll(w, t)
  local length = math.max(w.stop - w.start, 1e-3)
  local back = math.ceil((w.start - t) / length) * length
  return new_window(w.limit, w.start - back, w.stop - back, w.limit, w.limit, w.length, w.seq,
                    true)
end

local function stale(w, t)
  return w.leak == 0 and t >= w.stop and (w.assumed or t >= 2 * w.stop - w.start)
end

local function window_earliest(w, t, cost)
  if w.leak > 0 then
    w = roll_window(w, t)
    t = math.max(t, w.start)
    local have, need = w.base - w.spent, math.min(cost, w.limit)
    if have >= need then return t, false end
    return t + (need - have) / w.leak, false
  end
  if t >= w.stop and w.assumed then return w.stop, true end
  w = roll_window(w, t)
  t = math.max(t, w.start)
  if w.spent + cost > w.base or (cost == 0 and w.spent >= w.base) then
    if w.spent == 0 and w.base >= w.limit then return t, false end
    return window_earliest(w, w.stop, cost)
  end
  local burst = math.min(w.base, math.max(1.0, math.ceil(w.base * PACE_BURST)))
  local need = w.spent + cost - burst
  if need <= 0 or w.base <= burst then return t, false end
  local span = PACE_SPAN * (w.stop - w.start)
  return math.max(t, w.start + need * span / (w.base - burst + 1)), false
end

local function slow_start(s)
  if adaptive == nil or s.rate ~= nil or #s.wl > 0 or #cfg.limits > 0 then return false end
  return s.sent - s.answered >= 1 + math.floor(s.answered / 4)
end

local function policies(s) -- {name, tat, rate, burst}
  local out = {}
  for _, lim in ipairs(cfg.limits) do
    out[#out + 1] = {lim[1], s.tats[lim[1]] or 0.0, lim[2], lim[3]}
  end
  if adaptive ~= nil and s.rate ~= nil and #s.wl == 0 then
    out[#out + 1] = {ADAPTIVE, s.tats[ADAPTIVE] or 0.0, s.rate, 1.0}
  end
  return out
end

-- A Grant as {ok, wait, at, ticket, policy, again}; Python adds the cost it passed.
local function grant(ok, wait, at, ticket, policy, again)
  return {ok and 1 or 0, fmt(wait), fmt(at), fmt(ticket), policy, again and 1 or 0}
end

local function acquire(s, cost, max_wait)
  if now < s.probing_until then
    return grant(true, PROBE_POLL, now + PROBE_POLL, s.seq, 'probe', true)
  end
  local probe = s.seq == 0
  for _, name in ipairs(s.wl) do
    if stale(s.w[name], now) then probe = true end
  end
  if probe then
    for _, name in ipairs(s.wl) do s.w[name] = roll_window(s.w[name], now) end
  end
  if slow_start(s) then
    return grant(true, PROBE_POLL, now + PROBE_POLL, s.seq, 'slow_start', true)
  end
  local windowed = #s.wl > 0
  local adaptive_on = adaptive ~= nil and s.rate ~= nil and not windowed
  local adaptive_rate = truthy(s.rate) and s.rate or 1.0
  local tats = s.tats
  local spaced = windowed and s.sent > s.answered  -- others are out: keep their order
  local t, policy = math.max(now, s.last_at + (spaced and SPACING or 0.0)), 'queue'
  if s.cooldown_until > t then t, policy = s.cooldown_until, 'cooldown' end
  if t == now then policy = '' end
  for _, lim in ipairs(cfg.limits) do
    local at = gcra_earliest(tats[lim[1]] or 0.0, t, cost, lim[2], lim[3])
    if at > t then t, policy = at, lim[1] end
  end
  if adaptive_on then
    local at = gcra_earliest(tats[ADAPTIVE] or 0.0, t, cost, adaptive_rate, 1.0)
    if at > t then t, policy = at, ADAPTIVE end
  end
  for _ = 1, windowed and 8 or 0 do
    local moved = false
    for _, name in ipairs(s.wl) do
      local at, again = window_earliest(s.w[name], t, cost)
      if again then
        return grant(at - now <= max_wait, at - now, at, s.seq, name, true)
      end
      if at > t then t, policy, moved = at, name, true end
    end
    if not moved then break end
  end
  local wait = t - now
  if wait > max_wait then return grant(false, wait, t, s.seq, policy, false) end
  local bucket = s.w[policy]
  if wait > HORIZON and (policy == ADAPTIVE or (bucket ~= nil and bucket.leak > 0)) then
    local at = t - HORIZON
    return grant(true, at - now, at, s.seq, policy, true)
  end
  for _, lim in ipairs(cfg.limits) do
    tats[lim[1]] = math.max(tats[lim[1]] or 0.0, t) + cost / lim[2]
  end
  if adaptive_on then
    tats[ADAPTIVE] = math.max(tats[ADAPTIVE] or 0.0, t) + cost / adaptive_rate
  end
  for _, name in ipairs(s.wl) do
    local w = roll_window(s.w[name], t)
    w.spent = w.spent + cost
    s.w[name] = w
  end
  if s.probe_start == 0.0 then s.probe_start = now end
  s.seq = s.seq + cost
  s.sent = s.sent + 1
  s.last_at = t
  if probe then s.probing_until = t + PROBE_TIMEOUT end
  return grant(true, wait, t, s.seq, policy, false)
end

local function release(s, at, cost)
  for _, p in ipairs(policies(s)) do s.tats[p[1]] = math.max(now, p[2] - cost / p[3]) end
  for _, name in ipairs(s.wl) do
    local w = s.w[name]
    if w.leak > 0 then
      w.base = math.min(w.limit, w.base + cost)
    elseif w.start <= at and at < w.stop then
      w.spent = math.max(0.0, w.spent - cost)
      if w.assumed and w.start > now and w.spent == 0 then s.w[name] = unroll(w, now) end
    end
  end
  s.answered = s.answered + 1
  if at >= s.last_at then s.last_at = now end
end

local function leak_of(qlimit, ttr, qwindow, limit, remaining, old)
  if not truthy(qwindow) or ttr == nil or qlimit == nil or limit <= 0 then return 0.0 end
  if math.abs(ttr - (limit - remaining) * qwindow / limit) > LEAK_MATCH then return 0.0 end
  if (0 < remaining and remaining < limit) or (old ~= nil and old.leak > 0) then
    return limit / qwindow
  end
  return 0.0
end

local function learn(s, q, ticket, after)
  local policy, qlimit, remaining = q[1], opt(q[2]), opt(q[3])
  local ttr, qwindow = opt(q[4]), opt(q[5])
  if remaining == nil then return end
  local limit = qlimit ~= nil and qlimit or remaining
  local old = s.w[policy]
  local leak = leak_of(qlimit, ttr, qwindow, limit, math.min(remaining, limit), old)
  if leak > 0 then
    local estimate = math.min(remaining, limit) - after
    if old ~= nil and old.leak > 0 then
      local current = roll_window(old, now)
      if estimate >= current.base - current.spent then return end
    end
    local stop = now + (limit - estimate) / leak
    set_window(s, policy, new_window(limit, now, stop, estimate, 0.0,
                                     truthy(qwindow) and qwindow or 0.0, ticket, false, leak))
    return
  end
  if old ~= nil and old.leak > 0 then old = nil end
  local length
  if truthy(qwindow) then
    length = qwindow
  else
    length = math.max(old and old.length or 0.0, truthy(ttr) and ttr or 0.0)
  end
  if ttr == nil then
    if old and old.stop > now then
      ttr = old.stop - now
    else
      ttr = truthy(length) and length or DEFAULT_RESET
    end
  end
  local stop = now + ttr
  local estimate = math.max(0.0, math.min(remaining, limit) - after)
  if old ~= nil then
    local tolerance = math.min(1.0, 0.5 * length)
    if old.assumed and stop <= old.start + tolerance then return end
    if not old.assumed and math.abs(stop - old.stop) <= tolerance then
      old.stop = math.max(now, math.min(stop, old.stop))
      if estimate < old.base - old.spent then
        old.start, old.base, old.spent = now, estimate, 0.0
        old.seq = math.max(old.seq, ticket)
      end
      return
    end
    local last_end = old.assumed and old.start or old.stop
    if not truthy(qwindow) and stop - last_end > tolerance then
      length = math.max(stop - last_end, ttr)
    end
  end
  set_window(s, policy, new_window(limit, now, stop, estimate, 0.0, length, ticket, false))
end

local function capped(rate)
  local max_rate = opt(adaptive.max_rate)
  if truthy(max_rate) then return math.min(rate, max_rate) end
  return rate
end

local function succeed(s)
  s.strikes = 0
  s.probe_ok = s.probe_ok + 1
  if adaptive ~= nil and s.rate ~= nil then
    local rate
    if s.ramping then
      rate = s.rate + RAMP
    else
      local step = adaptive.increase_step / math.max(s.rate, 1.0)
      if s.peak > 0 and s.rate >= s.peak * PEAK_NEAR then step = step * PEAK_STEP end
      rate = s.rate + step
    end
    s.rate = capped(rate)
  end
end

local function decrease(s, cooldown)
  if adaptive == nil or #s.wl > 0 then return end
  local rate
  if s.rate == nil then
    local elapsed = math.max(now - s.probe_start, 0.0) + cooldown
    local measured = s.probe_ok / math.max(elapsed, 1.0)
    local initial = opt(adaptive.initial_rate)
    rate = truthy(initial) and initial or measured
    s.ramping = true
  else
    s.peak = s.rate
    rate = s.rate * adaptive.decrease_factor
    s.ramping = false
  end
  rate = math.max(rate, adaptive.min_rate)
  s.rate = capped(rate)
  s.tats[ADAPTIVE] = math.max(s.cooldown_until, s.last_at + 1.0 / s.rate)
end

-- An Outcome as {backoff, cooldown, rate, with_errors}; Python adds the header errors.
local function observe(s, ticket, status, obs)
  s.probing_until = 0.0
  s.answered = s.answered + 1
  if status <= 0 then return {false, '0', false, 0} end
  local after = math.max(0.0, s.seq - ticket)
  for _, q in ipairs(obs.q) do learn(s, q, ticket, after) end
  local retry_after = opt(obs.ra)
  local pushback = codes[status] or (retry_after ~= nil and status >= 400)
  if not pushback then
    if status < 500 then succeed(s) end
    return {false, '0', s.rate ~= nil and fmt(s.rate), 1}
  end
  local reason, cooldown
  if retry_after ~= nil then
    reason, cooldown = 'retry_after', math.min(retry_after, cfg.max_cooldown)
  elseif s.strikes == 0 and s.rate ~= nil and #s.wl == 0 then
    reason, cooldown = string.format('status_%d', status), 1.0 / s.rate
  else
    reason = string.format('status_%d', status)
    cooldown = math.min(cfg.cooldown * 2 ^ math.min(s.strikes, 10), cfg.max_cooldown)
  end
  local first = ticket > s.decrease_seq
  if first or retry_after ~= nil then
    s.cooldown_until = math.max(s.cooldown_until, now + cooldown)
  end
  if first then
    s.strikes = s.strikes + 1
    s.decrease_seq = s.seq
    decrease(s, cooldown)
  end
  return {reason, fmt(cooldown), s.rate ~= nil and fmt(s.rate), 1}
end

-- -- one step: load, decide, save with a TTL --------------------------------------------

local raw = redis.call('GET', key)
if op == 'load' then return {raw, fmt(now)} end
local s = raw and decode(raw) or fresh()
local result
if op == 'acquire' then
  result = acquire(s, num(ARGV[4]), num(ARGV[5]))
elseif op == 'observe' then
  result = observe(s, num(ARGV[4]), num(ARGV[5]), cjson.decode(ARGV[6]))
elseif op == 'release' then
  release(s, num(ARGV[4]), num(ARGV[5]))
  result = 1
else
  return redis.error_reply('otel_ratelimit: unknown operation ' .. tostring(op))
end
-- Idle keys vanish once nothing they hold can matter: twice the longest window, backlog or
-- pause ahead (at least an hour, at most 400 days).
local ttl = math.max(3600, 2 * cfg.span, 2 * (s.cooldown_until - now), 2 * (s.last_at - now))
for _, tat in pairs(s.tats) do ttl = math.max(ttl, 2 * (tat - now)) end
for _, name in ipairs(s.wl) do
  local w = s.w[name]
  ttl = math.max(ttl, 2 * (w.stop - now), 2 * w.length)
end
ttl = math.min(ttl, 400 * 86400)
redis.call('SET', key, encode(s), 'PX', string.format('%d', math.ceil(ttl * 1000)))
return result

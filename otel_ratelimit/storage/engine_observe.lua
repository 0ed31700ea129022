-- engine.lua continued (learning from responses, AIMD, observe and the dispatch): redis_codec.py joins engine.lua, engine_acquire.lua
-- and engine_observe.lua, in that order, into the one script each EVALSHA runs.

local function leak_of(qlimit, ttr, qwindow, limit, remaining, old)
  if not truthy(qwindow) or ttr == nil or qlimit == nil or limit <= 0 then return 0.0 end
  if math.abs(ttr - (limit - remaining) * qwindow / limit) > LEAK_MATCH then return 0.0 end
  if old ~= nil and old.leak > 0 then return limit / qwindow end
  if 0 < remaining and remaining < limit and (old == nil or ttr ~= math.floor(ttr)) then
    return limit / qwindow
  end
  return 0.0
end

local function learn(s, q, ticket, after, unseen, given)
  local policy, qlimit, remaining = q[1], opt(q[2]), opt(q[3])
  local ttr, qwindow = opt(q[4]), opt(q[5])
  if remaining == nil then return end
  local limit = qlimit ~= nil and qlimit or remaining
  local old = s.w[policy]
  local leak = leak_of(qlimit, ttr, qwindow, limit, math.min(remaining, limit), old)
  if leak > 0 then
    local estimate = math.min(remaining, limit) - s.out
    if old ~= nil and old.leak > 0 then
      local current = roll_window(old, now)
      estimate = math.min(estimate, current.base - current.spent + given)
    end
    local stop = now + (limit - estimate) / leak
    set_window(s, policy, new_window(limit, now, stop, estimate, 0.0,
                                     truthy(qwindow) and qwindow or 0.0, ticket, false, leak))
    return
  end
  if old ~= nil and old.leak > 0 then old = nil end
  after = after + math.min(unseen, math.max(1.0, math.ceil(limit * PACE_BURST)))
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
  local estimate = math.min(remaining, limit) - after
  if old ~= nil then
    local tolerance = math.min(1.0, 0.5 * length)
    if old.assumed and stop <= old.start + tolerance then return end
    if not old.assumed and math.abs(stop - old.stop) <= tolerance then
      old.stop = math.max(now, math.min(stop, old.stop))
      local room = old.base - old.spent
      estimate = math.min(estimate, room + given)
      if estimate ~= room then
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
      if rate >= s.peak then rate, s.ramping, s.peak = s.peak, false, 0.0 end
    else
      local step = adaptive.increase_step / math.max(s.rate, 1.0)
      if s.peak * PEAK_NEAR <= s.rate and s.rate <= s.peak / PEAK_NEAR then
        step = step * PEAK_STEP
      end
      rate = s.rate + step
    end
    s.rate = capped(rate)
  end
end

local function decrease(s, cooldown)
  if adaptive == nil or #s.wl > 0 then return end
  local rate
  if s.rate == nil then
    if not truthy(opt(adaptive.initial_rate)) and (s.probe_ok <= 0 or s.probe_start <= 0) then
      s.probe_start, s.probe_ok = s.cooldown_until, 0.0
      return
    end
    local elapsed = math.max(now - s.probe_start, 0.0) + cooldown
    local low = s.probe_ok / math.max(elapsed, 1.0)
    local high = s.probe_ok / math.max(elapsed - 1.0, 1.0)
    local initial = opt(adaptive.initial_rate)
    rate = truthy(initial) and initial or (low + high) / 2
    s.peak = math.max(rate, high)
    s.ramping = true
  else
    rate = s.rate * adaptive.decrease_factor
    s.peak = s.rate
    s.ramping = false
  end
  rate = math.max(rate, adaptive.min_rate)
  s.rate = capped(rate)
  s.tats[ADAPTIVE] = math.max(s.cooldown_until, s.last_at + 1.0 / s.rate)
end

-- An Outcome as {backoff, cooldown, rate, with_errors}; Python adds the header errors.
local function observe(s, ticket, status, obs, cost)
  s.probing_until = 0.0
  local out = s.out
  answered(s, cost)
  if status <= 0 then return {false, '0', false, 0} end
  local after = math.max(0.0, s.seq - ticket)
  local unseen = math.max(0.0, s.sent - s.answered - after)
  for _, q in ipairs(obs.q) do learn(s, q, ticket, after, unseen, out - s.out) end
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
  result = acquire(s, num(ARGV[4]), num(ARGV[5]), num(ARGV[6] or '0.0'))
elseif op == 'observe' then
  result = observe(s, num(ARGV[4]), num(ARGV[5]), cjson.decode(ARGV[6]), num(ARGV[7] or '1.0'))
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

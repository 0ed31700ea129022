-- engine.lua continued (windows, acquire and release): redis_codec.py joins engine.lua, engine_acquire.lua
-- and engine_observe.lua, in that order, into the one script each EVALSHA runs.
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
  local spent = 0.0
  if w.base < 0 and skipped == 0 then spent = math.min(w.limit, -w.base) end
  return new_window(w.limit, start, start + length, w.limit, spent, w.length, w.seq, true)
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
  local left = w.stop - w.start
  local span = math.max(0.0, left - math.max((1 - PACE_SPAN) * left,
                                             math.min(ROUNDING, ROUNDING_SHARE * w.length)))
  return math.max(t, w.start + need * span / (w.base - burst + 1)), false
end

local function slow_start(s)
  if adaptive == nil or s.rate ~= nil or #s.wl > 0 or #cfg.limits > 0 then return false end
  return s.sent - s.answered >= 1 + math.floor(s.probe_ok / 4)
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

-- A Grant as {ok, wait, at, ticket, policy, again, place}; Python adds the cost it passed.
local function grant(ok, wait, at, ticket, policy, again, place)
  return {ok and 1 or 0, fmt(wait), fmt(at), fmt(ticket), policy, again and 1 or 0,
          fmt(place or 0.0)}
end

-- line.py: a place in line for callers waiting on a learned rate

local function learned(s, policy)
  if policy == ADAPTIVE then return true end
  local w = s.w[policy]
  return w ~= nil and w.leak > 0
end

local function line_rate(s, adaptive_on, adaptive_rate, policy)
  if adaptive_on then return adaptive_rate end
  local w = s.w[policy]
  if w ~= nil and w.leak > 0 then return w.leak end
  for _, name in ipairs(s.wl) do
    if s.w[name].leak > 0 then return s.w[name].leak end
  end
  return 0.0
end

local function spare(s, t, cost)
  local room = math.huge
  for _, name in ipairs(s.wl) do
    local w = s.w[name]
    if w.leak > 0 then
      w = roll_window(w, t)
      room = math.min(room, w.base - w.spent - cost)
    end
  end
  if 0 < room and room < math.huge then return room end
  return 0.0
end

local function wait_in_line(s, t, cost, max_wait, place, rate, policy, room)
  local served, stop = s.line_served, s.line_end
  if stop > served and t <= now then
    local late = now - math.max(s.last_at + cost / rate, s.cooldown_until) - HORIZON
    if late > 0 then
      served = math.min(stop, served + late * rate)
      if served >= stop then s.line_served = served end
    end
  end
  local new = place <= 0 or place > stop
  if new then place = stop + cost end
  local ahead = place - cost - served - room
  local turn = t
  if ahead > 0 then turn = t + ahead / rate end
  if turn - now <= NEAR then
    if t - now <= max_wait then
      if place > served then s.line_served = place else s.line_served = served end
      if new then s.line_end = place end
    end
    return nil
  end
  if turn - now > max_wait then
    if not new and place == stop and served < stop then
      s.line_end = math.max(stop - cost, s.line_served)
    end
    return grant(false, turn - now, turn, s.seq, policy, false)
  end
  if new then s.line_end = place end
  local at = turn - HORIZON
  return grant(true, at - now, at, s.seq, policy, true, place)
end

local function held(s, max_wait, policy, place)
  local ok = max_wait >= PROBE_POLL
  return grant(ok, PROBE_POLL, now + PROBE_POLL, s.seq, policy, true, ok and place or 0.0)
end

local function acquire(s, cost, max_wait, place)
  if now < s.probing_until then
    return held(s, max_wait, 'probe', place)
  end
  local probe = s.seq == 0
  for _, name in ipairs(s.wl) do
    if stale(s.w[name], now) then probe = true end
  end
  if probe then
    for _, name in ipairs(s.wl) do s.w[name] = roll_window(s.w[name], now) end
  end
  if slow_start(s) then
    if now - s.last_at < PROBE_TIMEOUT then
      return held(s, max_wait, 'slow_start', place)
    end
    s.answered, s.out = s.sent, 0.0
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
        local ok = at - now <= max_wait
        return grant(ok, at - now, at, s.seq, name, true, ok and place or 0.0)
      end
      if at > t then t, policy, moved = at, name, true end
    end
    if not moved then break end
  end
  local wait = t - now
  if s.line_end > s.line_served or (wait > HORIZON and learned(s, policy)) then
    local rate = line_rate(s, adaptive_on, adaptive_rate, policy)
    if rate > 0 then
      local room = 0.0
      if not adaptive_on then room = spare(s, t, cost) end
      local g = wait_in_line(s, t, cost, max_wait, place, rate, policy, room)
      if g ~= nil then return g end
    else
      s.line_served = s.line_end
    end
  end
  if wait > max_wait then return grant(false, wait, t, s.seq, policy, false) end
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
  s.out = s.out + cost
  s.last_at = t
  if probe then s.probing_until = t + PROBE_TIMEOUT end
  return grant(true, wait, t, s.seq, policy, false)
end

local function answered(s, cost)
  if s.answered < s.sent then s.answered = s.answered + 1 end
  s.out = s.out > cost and s.out - cost or 0.0
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
  answered(s, cost)
  if at >= s.last_at then s.last_at = now end
end

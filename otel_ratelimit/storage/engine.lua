-- otel_ratelimit's decision core (otel_ratelimit/engine.py) ported function for function to
-- Lua, so a whole decision is one atomic EVALSHA on the Redis server that holds the key.
-- The script is this file followed by engine_acquire.lua and engine_observe.lua (joined by
-- redis_codec.py; they share this file's locals).
-- Any change to engine.py must be made here too: tests/test_redis.py runs the same generated
-- steps on memory, SQLite and Redis and compares every Grant, Outcome and the final state.
--
-- KEYS[1]  the key's state: one JSON string (the KeyState; windows as an ordered list)
-- ARGV[1]  "acquire" | "observe" | "release" | "load"
-- ARGV[2]  the KeyConfig as JSON (see redis.py: _config_json)
-- ARGV[3]  the time, or "" for the server's clock (TIME)
-- ARGV[4+] acquire: cost, max_wait, place | observe: ticket, status, observation JSON, cost
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
local LEAK_MATCH, HORIZON, PEAK_NEAR, PEAK_STEP, NEAR = K[8], K[9], K[10], K[11], K[12]
local ROUNDING, ROUNDING_SHARE = K[13], K[14]
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
             out = d.out or 0.0,
             line_end = d.line_end or 0.0, line_served = d.line_served or 0.0,
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
          probing_until = 0, sent = 0, answered = 0, out = 0, line_end = 0,
          line_served = 0,
          wl = {}, w = {}}
end

local FIELDS = {'seq', 'cooldown_until', 'strikes', 'peak', 'probe_start', 'probe_ok',
                'decrease_seq', 'last_at', 'probing_until', 'sent', 'answered', 'out',
                'line_end', 'line_served'}

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


-- wrk script of bench/proxy.sh: POSTs tools/call "add" with fresh operands each time and
-- checks every answer: HTTP 200, and the text is the sum of the operands named by the
-- id the answer carries. BENCH_RATE > 0 paces the whole run at that many requests/s.
--
-- Each wrk thread has its own Lua state; done() sums the threads' counters and prints
-- one machine-readable RESULT line.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  checked = 0
  non200 = 0
  mismatches = 0
  sample = ""
  math.randomseed(thread_index * 7919 + os.time())
  headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
  -- bench/proxy.sh --policies: the gateway authenticates every call.
  local api_key = os.getenv("BENCH_API_KEY") or ""
  if api_key ~= "" then
    headers["X-API-Key"] = api_key
  end
  if rate > 0 then
    -- This thread's share of the rate; slots are handed out in order to whichever
    -- connection asks next, so the rate holds however many connections wait.
    interval_ms = 1000 * thread_count / rate
    next_slot = now_ms()
  end
end

function request()
  sent = sent + 1
  local a = math.random(-1000000, 1000000)
  local b = thread_index * 100000000 + sent
  local body = string.format(
    '{"jsonrpc":"2.0","id":"%d+%d","method":"tools/call","params":{"name":"add","arguments":{"a":%d,"b":%d}}}',
    a, b, a, b)
  return wrk.format("POST", nil, headers, body)
end

if rate > 0 then
  -- wrk waits this many (whole) milliseconds before the connection's next request.
  function delay()
    local now = now_ms()
    -- Never burst to catch up: a late slot is given up.
    if next_slot < now then
      next_slot = now
    end
    local wait = next_slot - now
    next_slot = next_slot + interval_ms
    return math.floor(wait + 0.5)
  end
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 then
    non200 = non200 + 1
    if sample == "" then
      sample = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 300)
    end
    return
  end
  local a, b = string.match(body, '"id":"(%-?%d+)%+(%-?%d+)"')
  local text = string.match(body, '"text":"(%-?%d+)"')
  if a == nil or text == nil or tonumber(a) + tonumber(b) ~= tonumber(text) then
    mismatches = mismatches + 1
    if sample == "" then
      sample = "wrong answer: " .. string.sub(body, 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local totals = { checked = 0, non200 = 0, mismatches = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
    if first == "" then
      first = thread:get("sample")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d checked=%d non200=%d mismatches=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, totals.checked, totals.non200, totals.mismatches,
    e.connect, e.read, e.write, e.timeout))
  if first ~= "" then
    io.write("SAMPLE " .. string.gsub(first, "\n", " ") .. "\n")
  end
end
